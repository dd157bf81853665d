/** Pieces every page uses: loading data, showing an API error, asking for confirmation, page notices. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';

/** The state of data loaded by {@link useAsync}. */
export interface Async<T> {
  readonly data?: T;
  readonly error?: unknown;
  readonly loading: boolean;
  /** Loads again (keeps the data shown until the new one arrives). */
  reload(): void;
}

/** Loads `load()` when `deps` change; a later load wins over an earlier one still running. */
export function useAsync<T>(load: () => Promise<T>, deps: readonly unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  const seq = useRef(0);
  useEffect(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => mine === seq.current && setState({ data, loading: false }),
      (error) => mine === seq.current && setState({ error, loading: false }),
    );
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** The code, status and message of an error (an ApiError's as the API wrote them). */
export function describeError(error: unknown): { code: string; status?: number; message: string } {
  if (error instanceof ApiError) {
    return { code: error.code, ...(error.status ? { status: error.status } : {}), message: error.message };
  }
  return { code: 'CONSOLE_ERROR', message: (error as Error)?.message ?? String(error) };
}

/** An error as an alert: its code (and HTTP status), its message, and what it means when that is known. */
export function ErrorBox(props: { error: unknown; title?: string; children?: ComponentChildren }) {
  const { code, status, message } = describeError(props.error);
  return (
    <div class="error" role="alert" data-code={code}>
      <p class="error-head">
        {props.title ? `${props.title}: ` : ''}
        <code class="error-code">{code}</code>
        {status ? <span class="error-status"> (HTTP {status})</span> : null}
      </p>
      <p class="error-message">{message}</p>
      {props.children}
    </div>
  );
}

/** A loading line announced to assistive technology. */
export const Loading = (props: { what: string }) => (
  <p class="loading" role="status" aria-live="polite">
    Loading {props.what}…
  </p>
);

/** What an action left to say: a success line, or an error with its explanation. */
export interface Notice {
  readonly ok?: string;
  readonly error?: unknown;
  readonly explain?: ComponentChildren;
}

/** Shows a {@link Notice} (nothing without one). */
export function NoticeView(props: { notice?: Notice | undefined; onDismiss(): void }) {
  const n = props.notice;
  if (!n) return null;
  if (n.error !== undefined) {
    return (
      <ErrorBox error={n.error} title="The action failed">
        {n.explain}
        <button type="button" class="secondary" onClick={props.onDismiss}>
          Dismiss
        </button>
      </ErrorBox>
    );
  }
  return (
    <p class="ok" role="status">
      {n.ok}{' '}
      <button type="button" class="secondary" onClick={props.onDismiss}>
        Dismiss
      </button>
    </p>
  );
}

/**
 * A modal confirmation (`<dialog>`: focus moves into it, Escape cancels, focus returns afterwards). The action
 * runs when confirmed; the dialog closes before it starts.
 */
export function ConfirmDialog(props: {
  title: string;
  confirmLabel: string;
  danger?: boolean;
  children: ComponentChildren;
  onConfirm(): void;
  onCancel(): void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    // The control that opened the dialog gets the focus back when it goes (if it is still on the page).
    const opener = document.activeElement as HTMLElement | null;
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => {
      // Closed first: while a modal dialog is open, the rest of the page is inert and cannot take the focus (this
      // runs before the dialog leaves the page).
      if (d?.open) d.close();
      if (opener?.isConnected) opener.focus();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      class="confirm"
      aria-labelledby="confirm-title"
      onCancel={(e) => {
        e.preventDefault();
        props.onCancel();
      }}
    >
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          props.onConfirm();
        }}
      >
        <h2 id="confirm-title">{props.title}</h2>
        <div class="confirm-body">{props.children}</div>
        <div class="actions">
          <button type="button" class="secondary" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" class={props.danger ? 'danger' : 'primary'}>
            {props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}

/** A version status as a badge (text, not colour alone). */
export const StatusBadge = (props: { status: string }) => (
  <span class={`badge status-${props.status.toLowerCase()}`}>{props.status}</span>
);

/** A command line with a button that copies it. */
export function Command(props: { label: string; text: string; id: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div class="command">
      <div class="command-head">
        <h3 id={`${props.id}-label`}>{props.label}</h3>
        <button
          type="button"
          class="secondary small"
          aria-describedby={`${props.id}-label`}
          onClick={() => {
            navigator.clipboard?.writeText(props.text).then(
              () => setCopied(true),
              () => setCopied(false),
            );
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>
      <pre id={props.id}>
        <code>{props.text}</code>
      </pre>
    </div>
  );
}
