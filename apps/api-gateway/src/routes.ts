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
  /** Set when the path exists but not for this method: the methods it has (answered 404 with `allow`, never 401). */
  allow?: string;
}

const ORDER_EVENTS = /^\/orders\/[^/]+\/events\/?$/;

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

/** One path of a group with public operations: each method it has, and whether it is public. */
interface Shape {
  methods: Record<string, boolean | undefined>;
  notAllowed: RouteMatch;
}

/** `methods`: method → public. HEAD goes with GET, as express serves it. */
function shape(group: Group, methods: Record<string, boolean>): Shape {
  const all: Record<string, boolean> = Object.assign(Object.create(null) as object, methods, 'GET' in methods ? { HEAD: methods.GET } : {});
  return { methods: all, notAllowed: Object.freeze({ ...match(group, true), allow: Object.keys(all).join(', ') }) };
}

/**
 * The paths of the groups that have public operations, with the methods their services serve
 * (user-service, product-service, inventory-service routes; the contract). A method a path does not
 * have, or a path that does not exist, is a 404 of the gateway, never a 401: a wrong route is not an
 * authentication failure. A new route under these groups needs a line here.
 */
const AUTH: Record<string, Shape | undefined> = Object.assign(Object.create(null) as object, {
  register: shape('auth', { POST: true }),
  login: shape('auth', { POST: true }),
  logout: shape('auth', { POST: false }),
});
const PRODUCTS = shape('products', { GET: true, POST: false });
const PRODUCT = shape('products', { GET: true, PATCH: false, DELETE: false });
const STOCK = shape('inventory', { GET: true, PUT: false });
const DOCS = shape('docs', { GET: true });

const resolveShape = (method: string, s: Shape | undefined): RouteMatch | undefined => {
  if (!s) return undefined;
  const isPublic = s.methods[method];
  return isPublic === undefined ? s.notAllowed : match(s.notAllowed.group, isPublic);
};

/** How many non-empty segments follow index `from` (a `/`) of `path`, at most 2; a trailing slash is ignored. */
function segmentsAfter(path: string, from: number): number {
  if (from === -1 || from >= path.length - 1) return 0;
  const next = path.indexOf('/', from + 1);
  return next === -1 || next === path.length - 1 ? 1 : 2;
}

/**
 * Resolves a path below `/api` (`/products/1`, query string excluded) to its route, or undefined
 * when no such route exists. `method` is upper case.
 */
export function resolveRoute(method: string, path: string): RouteMatch | undefined {
  const end = path.indexOf('/', 1);
  const segment = end === -1 ? path.slice(1) : path.slice(1, end);
  switch (segment) {
    case 'auth':
      if (segmentsAfter(path, end) !== 1) return undefined;
      return resolveShape(method, AUTH[path.slice(end + 1).replace(/\/$/, '')]);
    case 'users':
      return match('users', false);
    case 'products': {
      const depth = segmentsAfter(path, end);
      return depth === 2 ? undefined : resolveShape(method, depth === 0 ? PRODUCTS : PRODUCT);
    }
    case 'inventory':
      return segmentsAfter(path, end) === 1 ? resolveShape(method, STOCK) : undefined;
    case 'orders':
      return ORDER_EVENTS.test(path) ? match('events', false) : match('orders', false);
    case 'payments':
      return match('payments', false);
    case 'docs':
      // Swagger UI's own files live below /api/docs too.
      return resolveShape(method, DOCS);
    default:
      return undefined;
  }
}
