/** A small similarity matrix as a table: each cell's number, shaded by its value. */

export function HeatMap({ labels, values, min, max, caption, format }: { labels: string[]; values: number[][]; min: number; max: number; caption: string; format: (v: number) => string }) {
  const shade = (v: number) => {
    const t = max === min ? 1 : Math.min(1, Math.max(0, (v - min) / (max - min)));
    // From white to a deep blue; text turns white where the cell gets dark.
    const l = 97 - 62 * t;
    return { background: `hsl(212 70% ${l}%)`, color: l < 60 ? '#fff' : '#111' };
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
