// Downloads a file from the admin API with the dashboard's own authentication
// (a plain link would not carry the desktop app's bearer token).

import { adminFetch, errorFromBody } from './api/client';
import { dispositionFilename } from './usage';

export async function downloadAdminFile(path: string, fallbackName: string): Promise<string> {
  const res = await adminFetch(path, { headers: { Accept: '*/*' } });
  if (!res.ok) {
    let body: unknown = null;
    try {
      body = await res.json();
    } catch {
      // not JSON
    }
    throw errorFromBody(res.status, body, res.statusText);
  }
  const name = dispositionFilename(res.headers.get('content-disposition'), fallbackName);
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.style.display = 'none';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return name;
}
