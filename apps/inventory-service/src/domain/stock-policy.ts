import type { ReservationItem } from './inventory';

/**
 * LowStock is announced once per crossing: when a change takes `available` from at or above the
 * threshold to below it. Further sales below the threshold stay quiet; a restock re-arms it.
 */
export const dropsBelowThreshold = (before: number, after: number, threshold: number): boolean => before >= threshold && after < threshold;

/**
 * The same product twice in one request is one line with the summed quantity. Ids are lower-cased
 * and lines sorted by id, the order Postgres sorts uuids in, so stored and requested lines compare.
 */
export function normalizeItems(items: ReservationItem[]): ReservationItem[] {
  const totals = new Map<string, number>();
  for (const { productId, quantity } of items) {
    const id = productId.toLowerCase();
    totals.set(id, (totals.get(id) ?? 0) + quantity);
  }
  return [...totals].map(([productId, quantity]) => ({ productId, quantity })).sort((a, b) => (a.productId < b.productId ? -1 : a.productId > b.productId ? 1 : 0));
}

export const sameItems = (a: ReservationItem[], b: ReservationItem[]): boolean =>
  a.length === b.length && a.every((item, i) => item.productId === b[i].productId && item.quantity === b[i].quantity);
