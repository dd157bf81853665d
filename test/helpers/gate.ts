/**
 * A step held until the test lets it go: the step awaits `opened`, which resolves once `open` is called (again: no
 * effect). How a test orders two things without a time between them.
 */
export function gate(): { opened: Promise<void>; open: () => void } {
  let open = () => {};
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { opened, open };
}
