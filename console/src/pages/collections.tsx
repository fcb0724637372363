/** Collections: what each costs per document next to float32, its recall, its jobs; create one. */
import { useState } from 'preact/hooks';
import { api } from '../api';
import { useAction, useApi } from '../hooks';
import type { Collection, ModelInfo } from '../types';
import { ErrorBox } from '../ui/error';
import { bytes, count, percent, short } from '../ui/format';

/** Bytes per document: in memory (first stage), on disk, and what float32 vectors alone would take. */
export function perDocument(c: Collection) {
  const n = Math.max(1, c.documents);
  return { memory: c.memory_bytes === null ? null : c.memory_bytes / n, disk: c.disk_bytes / n, float32: 4 * c.dimension };
}

export function transformName(c: Collection): string {
  const served = c.transform?.served;
  if (!served) return 'first dims';
  const t = c.transform?.available.find((a) => a.fingerprint === served);
  return t ? `${t.method} ${short(t.fingerprint)}` : short(served);
}

export function activity(c: Collection): string | null {
  if (c.reencode) return `re-encoding ${count(c.reencode.done)} of ${count(c.reencode.total)}`;
  if (c.transform?.switching) {
    const s = c.transform.switching;
    return `switching codes (${s.phase}) ${count(s.done)} of ${count(s.total)}`;
  }
  if (c.quality?.measuring) return `measuring recall on ${count(c.quality.measuring.queries)} queries`;
  return null;
}

function CreateCollection({ onCreated }: { onCreated: (name: string) => void }) {
  const models = useApi<{ models: ModelInfo[] }>('/models');
  const active = models.data?.models.find((m) => m.active);
  const [name, setName] = useState('');
  const [bits, setBits] = useState('');
  const [target, setTarget] = useState('');
  const create = useAction(async () => {
    await api('POST', '/collections', {
      body: { name, ...(bits && { code_bits: Number(bits) }), ...(target && { target_recall: Number(target) }) },
    });
    onCreated(name);
    setName('');
  });
  return (
    <form
      class="inline-form"
      aria-labelledby="create-h"
      onSubmit={(e) => {
        e.preventDefault();
        void create.act();
      }}
    >
      <h2 id="create-h">Create a collection</h2>
      <label>
        Name
        <input name="name" required value={name} onInput={(e) => setName(e.currentTarget.value)} pattern="[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}" />
      </label>
      <label>
        Code bits
        <select name="code_bits" value={bits} onChange={(e) => setBits(e.currentTarget.value)}>
          <option value="">model default</option>
          {(active?.binary_code_bits ?? []).map((b) => (
            <option key={b} value={String(b)}>
              {b} bits ({b / 8} bytes)
            </option>
          ))}
        </select>
      </label>
      <label>
        Target recall
        <input name="target_recall" type="number" min="0.5" max="1" step="0.001" placeholder="0.99" value={target} onInput={(e) => setTarget(e.currentTarget.value)} />
      </label>
      <button type="submit" class="primary" disabled={create.pending}>
        Create
      </button>
      <ErrorBox error={create.error} what="Creating the collection" />
    </form>
  );
}

export function Collections() {
  const list = useApi<{ collections: Collection[] }>('/collections', 5000);
  return (
    <>
      <h1>Collections</h1>
      <ErrorBox error={list.error} what="GET /collections" />
      {list.data && list.data.collections.length === 0 && <p>No collections yet: create one below, then add documents to it.</p>}
      {list.data && list.data.collections.length > 0 && (
        <table data-testid="collections">
          <thead>
            <tr>
              <th scope="col">name</th>
              <th scope="col" class="num">documents</th>
              <th scope="col" class="num">code</th>
              <th scope="col">first-stage transform</th>
              <th scope="col" class="num">memory / doc</th>
              <th scope="col" class="num">disk / doc</th>
              <th scope="col" class="num">float32 / doc</th>
              <th scope="col" class="num">recall@10 (auto)</th>
              <th scope="col">now</th>
            </tr>
          </thead>
          <tbody>
            {list.data.collections.map((c) => {
              const per = perDocument(c);
              const q = c.quality?.first_stages.hamming;
              const at = q?.recall_at_10.find((p) => p.multiplier === q.auto_multiplier);
              return (
                <tr key={c.name}>
                  <td>
                    <a href={`#/collections/${encodeURIComponent(c.name)}`}>{c.name}</a>
                  </td>
                  <td class="num">{count(c.documents)}</td>
                  <td class="num">{c.code_bits} bits</td>
                  <td>{transformName(c)}</td>
                  <td class="num">{bytes(per.memory)}</td>
                  <td class="num">{bytes(per.disk)}</td>
                  <td class="num">{bytes(per.float32)}</td>
                  <td class="num">{at ? `${percent(at.recall)} at ×${q!.auto_multiplier} (${count(c.quality!.measured_queries)} q)` : '–'}</td>
                  <td>{activity(c) ?? ''}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <CreateCollection
        onCreated={(name) => {
          list.reload();
          location.hash = `#/collections/${encodeURIComponent(name)}`;
        }}
      />
    </>
  );
}
