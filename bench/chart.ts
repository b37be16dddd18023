// A small SVG chart of latency percentiles against requests in flight, Mandate beside the
// no-op server: something a person can open in a browser. Log scales on both axes.

interface Point {
  inFlight: number;
  mandate: { p50us: number; p99us: number };
  /** Mandate with evaluation.mode pool, when measured. */
  pool?: { p50us: number; p99us: number };
  noop: { p50us: number; p99us: number };
}

export function renderLatencyChart(rows: readonly Point[]): string {
  const W = 720;
  const H = 420;
  const m = { l: 70, r: 170, t: 40, b: 50 };
  const xs = rows.map((r) => r.inFlight);
  const ys = rows.flatMap((r) => [r.mandate.p50us, r.mandate.p99us, r.noop.p50us, r.noop.p99us, r.pool?.p50us ?? 0, r.pool?.p99us ?? 0]).filter((v) => v > 0);
  const [x0, x1] = [Math.log10(Math.min(...xs)), Math.log10(Math.max(...xs)) || 1];
  const [y0, y1] = [Math.floor(Math.log10(Math.min(...ys))), Math.ceil(Math.log10(Math.max(...ys)))];
  const px = (v: number): number => m.l + ((Math.log10(v) - x0) / Math.max(x1 - x0, 1e-9)) * (W - m.l - m.r);
  const py = (v: number): number => H - m.b - ((Math.log10(Math.max(v, 1)) - y0) / Math.max(y1 - y0, 1)) * (H - m.t - m.b);
  const series: [string, string, string, (r: Point) => number][] = [
    ['Mandate p99', '#c0392b', '', (r) => r.mandate.p99us],
    ['Mandate p50', '#e67e22', '', (r) => r.mandate.p50us],
    ...(rows.every((r) => r.pool !== undefined)
      ? ([
          ['Mandate (pool) p99', '#8e44ad', '2 3', (r: Point) => r.pool?.p99us ?? 0],
          ['Mandate (pool) p50', '#2980b9', '2 3', (r: Point) => r.pool?.p50us ?? 0],
        ] as [string, string, string, (r: Point) => number][])
      : []),
    ['no-op p99', '#2c3e50', '6 4', (r) => r.noop.p99us],
    ['no-op p50', '#7f8c8d', '6 4', (r) => r.noop.p50us],
  ];
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="24" font-size="15">Check latency against requests in flight (h2load, log scales)</text>`,
  ];
  for (let e = y0; e <= y1; e++) {
    const y = py(10 ** e);
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}" stroke="#eee"/><text x="${m.l - 8}" y="${y + 4}" text-anchor="end">${10 ** e >= 1000 ? `${10 ** (e - 3)} ms` : `${10 ** e} µs`}</text>`);
  }
  for (const x of xs) parts.push(`<line x1="${px(x)}" x2="${px(x)}" y1="${m.t}" y2="${H - m.b}" stroke="#eee"/><text x="${px(x)}" y="${H - m.b + 18}" text-anchor="middle">${x}</text>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">requests in flight</text>`);
  series.forEach(([label, color, dash, value], i) => {
    const pts = rows.map((r) => `${px(r.inFlight).toFixed(1)},${py(value(r)).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ''}/>`);
    for (const r of rows) parts.push(`<circle cx="${px(r.inFlight).toFixed(1)}" cy="${py(value(r)).toFixed(1)}" r="3" fill="${color}"/>`);
    const ly = m.t + 20 + i * 22;
    parts.push(`<line x1="${W - m.r + 15}" x2="${W - m.r + 45}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ''}/><text x="${W - m.r + 52}" y="${ly + 4}">${label}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
