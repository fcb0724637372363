/** A small similarity matrix as a table: each cell's number, shaded by its value. */

/** sRGB channels (0..1) of hsl(h, s, l), s and l in 0..1. */
function hslToRgb(h: number, s: number, l: number): [number, number, number] {
  const k = (n: number) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
  return [f(0), f(8), f(4)];
}

/** WCAG relative luminance of an sRGB colour. */
function luminance([r, g, b]: [number, number, number]): number {
  const lin = (c: number) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** Black or white text, whichever contrasts more with the cell (never under 4.58:1). */
function textOn(background: [number, number, number]): string {
  const y = luminance(background);
  return (y + 0.05) / 0.05 >= 1.05 / (y + 0.05) ? '#000' : '#fff';
}

export function HeatMap({ labels, values, min, max, caption, format }: { labels: string[]; values: number[][]; min: number; max: number; caption: string; format: (v: number) => string }) {
  const shade = (v: number) => {
    const t = max === min ? 1 : Math.min(1, Math.max(0, (v - min) / (max - min)));
    // From white to a deep blue; the text is black or white, whichever reads better on it.
    const l = 97 - 62 * t;
    return { background: `hsl(212 70% ${l}%)`, color: textOn(hslToRgb(212, 0.7, l / 100)) };
  };
  return (
    <table class="heatmap">
      <caption>{caption}</caption>
      <thead>
        <tr>
          <td />
          {labels.map((l) => (
            <th scope="col" key={l}>
              {l}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {values.map((row, i) => (
          <tr key={labels[i]}>
            <th scope="row">{labels[i]}</th>
            {row.map((v, j) => (
              <td key={j} style={shade(v)}>
                {format(v)}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
