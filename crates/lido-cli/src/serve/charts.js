'use strict';
// Hand-drawn time-series charts on <canvas>, no library: a y axis with its
// unit, a time axis ending at "now", threshold lines (max size, deadlines)
// drawn dashed with their label, red bands where the pool was down, and one
// line per series (a gap where a value is missing). Each canvas gets
// data-points: how many data points it drew (the browser test reads it).
const LidoChart = (() => {
  const PAD = { l: 52, r: 10, t: 10, b: 20 };
  const MIN_WINDOW = 60e3, MAX_WINDOW = 600e3;

  // 1, 2 or 5 times a power of ten, at or above v.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // A value with its unit, short enough for an axis label or a tile.
  function fmt(v, unit) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    if (unit === 'ms' && v >= 1000) return trim(v / 1000) + ' s';
    if (unit === '%') return trim(v) + ' %';
    const n = Math.abs(v) >= 1e6 ? trim(v / 1e6) + 'M' : Math.abs(v) >= 1e4 ? trim(v / 1e3) + 'k' : trim(v);
    return unit ? n + ' ' + unit : n;
  }

  function trim(v) {
    const a = Math.abs(v);
    const s = a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
    return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
  }

  // The time span shown: the data's, at least a minute, at most ten.
  function span(t, now) {
    if (!t.length) return MIN_WINDOW;
    return Math.min(MAX_WINDOW, Math.max(MIN_WINDOW, now - t[0]));
  }

  function timeLabel(ms) {
    if (ms === 0) return 'now';
    const s = Math.round(ms / 1000);
    return s % 60 === 0 ? '-' + s / 60 + ' min' : '-' + s + ' s';
  }

  function axes(g, box, vmax, unit, win) {
    const { x0, x1, y0, y1 } = box;
    g.font = '11px system-ui, sans-serif'; g.fillStyle = '#57606a'; g.strokeStyle = '#eaeef2'; g.lineWidth = 1;
    g.textAlign = 'right'; g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = vmax * i / 4, y = y1 - (y1 - y0) * i / 4;
      g.beginPath(); g.moveTo(x0, y + .5); g.lineTo(x1, y + .5); g.stroke();
      g.fillText(fmt(v, unit), x0 - 4, y);
    }
    g.textAlign = 'center'; g.textBaseline = 'top';
    const step = win > 300e3 ? 120e3 : win > 120e3 ? 60e3 : 15e3;
    for (let ago = 0; ago <= win + 1; ago += step) {
      const x = x1 - (x1 - x0) * ago / win;
      g.fillText(timeLabel(ago), Math.min(Math.max(x, x0 + 14), x1 - 12), y1 + 4);
    }
    g.strokeStyle = '#8c959f'; g.beginPath(); g.moveTo(x0 + .5, y0); g.lineTo(x0 + .5, y1 + .5); g.lineTo(x1, y1 + .5); g.stroke();
  }

  function bands(g, box, list, X) {
    for (const b of list || []) {
      const a = Math.max(box.x0, X(b.from)), z = Math.min(box.x1, X(b.to));
      if (z <= a) continue;
      g.fillStyle = b.color || 'rgba(207, 34, 46, 0.16)';
      g.fillRect(a, box.y0, z - a, box.y1 - box.y0);
    }
  }

  function threshold(g, box, th, Y, unit) {
    const y = Math.round(Y(th.value)) + .5;
    g.save(); g.strokeStyle = th.color || '#cf222e'; g.setLineDash([5, 4]); g.lineWidth = 1.5;
    g.beginPath(); g.moveTo(box.x0, y); g.lineTo(box.x1, y); g.stroke(); g.restore();
    g.fillStyle = th.color || '#cf222e'; g.textAlign = 'right'; g.textBaseline = 'bottom';
    g.fillText(th.label + ' ' + fmt(th.value, unit), box.x1 - 2, y - 2);
  }

  function line(g, s, t, X, Y) {
    let drawn = 0, open = false;
    g.save(); g.strokeStyle = s.color; g.lineWidth = s.width || 2; g.lineJoin = 'round';
    if (s.dash) g.setLineDash(s.dash);
    g.beginPath();
    for (let i = 0; i < t.length; i++) {
      const v = s.values[i];
      if (v === null || v === undefined || !isFinite(v)) { open = false; continue; }
      const x = X(t[i]), y = Y(v);
      if (open) g.lineTo(x, y); else g.moveTo(x, y);
      open = true; drawn++;
    }
    g.stroke(); g.restore();
    return drawn;
  }

  // opts: { t: [unix ms], now, unit, series: [{ label, color, values }],
  //         thresholds: [{ label, value, color }], bands: [{ from, to }], floor }
  function draw(canvas, opts) {
    const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    const g = canvas.getContext('2d'); g.setTransform(dpr, 0, 0, dpr, 0, 0); g.clearRect(0, 0, w, h);
    const box = { x0: PAD.l, x1: w - PAD.r, y0: PAD.t, y1: h - PAD.b };
    const win = span(opts.t, opts.now), tmin = opts.now - win;
    let vmax = opts.floor || 0;
    for (const s of opts.series) for (const v of s.values) if (isFinite(v) && v !== null && v > vmax) vmax = v;
    for (const th of opts.thresholds || []) if (th.value > vmax) vmax = th.value;
    vmax = niceMax(vmax * 1.08);
    const X = t => box.x0 + (box.x1 - box.x0) * (t - tmin) / win;
    const Y = v => box.y1 - (box.y1 - box.y0) * Math.min(v, vmax) / vmax;
    bands(g, box, opts.bands, X);
    axes(g, box, vmax, opts.unit, win);
    for (const th of opts.thresholds || []) threshold(g, box, th, Y, opts.unit);
    let points = 0;
    g.save(); g.beginPath(); g.rect(box.x0, box.y0 - 2, box.x1 - box.x0, box.y1 - box.y0 + 4); g.clip();
    for (const s of opts.series) points += line(g, s, opts.t, X, Y);
    g.restore();
    canvas.dataset.points = String(points);
  }

  return { draw, fmt };
})();
