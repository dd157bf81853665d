/** The console's pages and their location fragments. */

/** A parsed location fragment. */
export type Route =
  | { page: 'models' }
  | { page: 'model'; name: string }
  | { page: 'try'; name: string; ref?: string }
  | { page: 'rollout'; name: string; alias: string }
  | { page: 'live' }
  | { page: 'unknown'; hash: string };

const decode = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/** The route of a location fragment (`#/models/iris/try?ref=2`). */
export function parseRoute(hash: string): Route {
  const [pathPart = '', query = ''] = hash.replace(/^#/, '').split('?');
  const parts = pathPart.split('/').filter(Boolean).map(decode);
  const params = new URLSearchParams(query);
  if (parts.length === 0 || (parts.length === 1 && parts[0] === 'models')) return { page: 'models' };
  if (parts[0] === 'live' && parts.length === 1) return { page: 'live' };
  if (parts[0] === 'models' && parts[1]) {
    if (parts.length === 2) return { page: 'model', name: parts[1] };
    if (parts[2] === 'try' && parts.length === 3) {
      const ref = params.get('ref');
      return { page: 'try', name: parts[1], ...(ref ? { ref } : {}) };
    }
    if (parts[2] === 'rollout' && parts[3] && parts.length === 4) {
      return { page: 'rollout', name: parts[1], alias: parts[3] };
    }
  }
  return { page: 'unknown', hash };
}

/** The fragment of a route's page. */
export const href = {
  models: () => '#/models',
  model: (name: string) => `#/models/${encodeURIComponent(name)}`,
  try: (name: string, ref?: string) =>
    `#/models/${encodeURIComponent(name)}/try${ref ? `?ref=${encodeURIComponent(ref)}` : ''}`,
  rollout: (name: string, alias: string) =>
    `#/models/${encodeURIComponent(name)}/rollout/${encodeURIComponent(alias)}`,
  live: () => '#/live',
};
