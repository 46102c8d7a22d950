/**
 * The route table: which upstream serves each `/api/<group>`, and which requests are public.
 * Everything not listed as public needs a valid token at the edge; role checks stay with the
 * services, which verify the token again.
 */
export const GROUPS = ['auth', 'users', 'products', 'inventory', 'orders', 'events', 'payments', 'docs'] as const;
export type Group = (typeof GROUPS)[number];

export const UPSTREAMS = ['user-service', 'product-service', 'order-service', 'inventory-service', 'payment-service', 'event-bus'] as const;
export type UpstreamName = (typeof UPSTREAMS)[number];

export interface RouteMatch {
  group: Group;
  /** Undefined for routes the gateway answers itself (docs). */
  upstream?: UpstreamName;
  public: boolean;
  /** Bounded label for metrics, e.g. `/api/products`. */
  label: string;
}

const READ = new Set(['GET', 'HEAD']);
const ORDER_EVENTS = /^\/orders\/[^/]+\/events\/?$/;
const PUBLIC_AUTH = new Set(['/auth/register', '/auth/login']);

const UPSTREAM_OF: Record<Group, UpstreamName | undefined> = {
  auth: 'user-service',
  users: 'user-service',
  products: 'product-service',
  inventory: 'inventory-service',
  orders: 'order-service',
  events: 'event-bus',
  payments: 'payment-service',
  docs: undefined,
};

// Matches are built once: resolving a request allocates nothing.
const MATCHES = Object.fromEntries(
  GROUPS.map((group) => {
    const label = group === 'events' ? '/api/orders/:id/events' : `/api/${group}`;
    return [group, [false, true].map((isPublic) => Object.freeze({ group, upstream: UPSTREAM_OF[group], public: isPublic, label }))];
  }),
) as Record<Group, [RouteMatch, RouteMatch]>;

const match = (group: Group, isPublic: boolean): RouteMatch => MATCHES[group][isPublic ? 1 : 0];

/**
 * Resolves a path below `/api` (`/products/1`, query string excluded) to its route, or undefined
 * for an unknown group. `method` is upper case.
 */
export function resolveRoute(method: string, path: string): RouteMatch | undefined {
  const end = path.indexOf('/', 1);
  const segment = end === -1 ? path.slice(1) : path.slice(1, end);
  switch (segment) {
    case 'auth':
      // Login and register are public whatever the method: a wrong method is user-service's 404,
      // not an authentication failure.
      return match('auth', PUBLIC_AUTH.has(path.replace(/\/$/, '')));
    case 'users':
      return match('users', false);
    case 'products':
      return match('products', READ.has(method));
    case 'inventory':
      return match('inventory', READ.has(method) && end !== -1 && path.length > end + 1);
    case 'orders':
      return ORDER_EVENTS.test(path) ? match('events', false) : match('orders', false);
    case 'payments':
      return match('payments', false);
    case 'docs':
      return match('docs', READ.has(method));
    default:
      return undefined;
  }
}
