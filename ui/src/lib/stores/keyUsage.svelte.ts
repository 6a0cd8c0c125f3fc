// Requests per key per day over the last two weeks, for the Keys page's
// sparklines (from the usage rollups).

import { adminFetch, isMissingRoute } from '../api/client';
import { dayBuckets, rangeSince, summarize, type UsageResponse } from '../usage';

export const SPARK_DAYS = 14;

class KeyUsageStore {
  /** key id → requests per day, oldest first; null before loading or without the usage API. */
  daily = $state.raw<Map<string, number[]> | null>(null);
  available = $state(true);

  async load(): Promise<void> {
    try {
      const res = await adminFetch(`/admin/usage?granularity=day&since=${rangeSince(SPARK_DAYS)}`, {
        headers: { Accept: 'application/json' },
      });
      if (isMissingRoute(res)) {
        this.available = false;
        return;
      }
      if (!res.ok) return;
      const body = (await res.json()) as UsageResponse;
      const s = summarize(body.data, dayBuckets(SPARK_DAYS));
      this.daily = new Map(s.byKey.map((e) => [e.name, e.daily]));
    } catch {
      // The sparklines are a nicety: the list works without them.
    }
  }
}

export const keyUsage = new KeyUsageStore();
