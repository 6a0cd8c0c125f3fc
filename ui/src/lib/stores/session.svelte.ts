// Whether the dashboard may still call the admin API.

import { api, onUnauthorized } from '../api/client';

export type SessionState = 'active' | 'ended' | 'signed-out';

class SessionStore {
  state = $state<SessionState>('active');

  constructor() {
    onUnauthorized(() => {
      if (this.state === 'active') this.state = 'ended';
    });
  }

  async signOut(): Promise<void> {
    try {
      await api.POST('/admin/logout');
    } finally {
      this.state = 'signed-out';
    }
  }
}

export const session = new SessionStore();
