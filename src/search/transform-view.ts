/** What GET /collections/{name} shows of a collection's transforms. */
import type { CollectionRow, Store } from '../store/store.js';
import type { CollectionTransforms, TransformSwitchStatus } from './types.js';

export function transformView(store: Pick<Store, 'listTransforms'>, c: CollectionRow, switching: TransformSwitchStatus | null): CollectionTransforms {
  return {
    served: c.transform,
    available: store.listTransforms(c.id).map((t) => ({
      fingerprint: t.fingerprint,
      method: t.method,
      bits: t.bits,
      createdAt: t.createdAt,
      summary: JSON.parse(t.summary) as Record<string, unknown>,
    })),
    switching,
  };
}
