/** An API error as the API said it: its code and message (never a blank page). */
import { ApiError, Unreachable } from '../api';

export function ErrorBox({ error, what }: { error: Error | undefined; what?: string }) {
  if (!error) return null;
  const code = error instanceof ApiError ? error.code : error instanceof Unreachable ? 'UNREACHABLE' : 'ERROR';
  return (
    <div class="error" role="alert">
      {what && <strong>{what} failed: </strong>}
      <code class="code">{code}</code> {error.message}
    </div>
  );
}
