'use strict';
// The lido serve dashboard: polls /dashboard/series every second (the
// server keeps ten minutes of one-second points per pool, so a reload
// starts with the history), /statements every few seconds and /cluster
// (until it answers 404). Data goes into the DOM as text only.
const EP = window.lidoEndpoints;
const CAP = 600;
const state = { pools: {}, views: {}, lastT: null, now: Date.now(), order: 'total_time', statementsAt: 0, clusterUrl: EP.cluster, limits: {} };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
const fmt = LidoChart.fmt;
const last = p => p.points.length ? p.points[p.points.length - 1] : null;
const pct = v => (v === null || v === undefined) ? null : v * 100;

// The charts of one pool: what each draws from the points.
const CHARTS = [
  { key: 'conns', title: 'Connections', unit: '', floor: 1,
    series: () => [['in use', '#0969da', x => x.in_use], ['idle', '#8250df', x => x.idle], ['connecting', '#bf8700', x => x.connecting]],
    thresholds: (p, x) => x ? [{ label: 'max', value: x.max }].concat(x.target !== x.max ? [{ label: 'target', value: x.target, color: '#bf8700' }] : []) : [] },
  { key: 'wait', title: 'Acquire wait', unit: 'ms',
    series: () => [['p50', '#1a7f37', x => x.wait_p50_ms], ['p99', '#bc4c00', x => x.wait_p99_ms]],
    thresholds: p => [{ label: 'acquire timeout', value: p.acquire_timeout_ms, soft: true }] },
  { key: 'queue', title: 'Waiters and timeouts', unit: '',
    series: () => [['waiters', '#0969da', x => x.waiters], ['timeouts/s', '#cf222e', x => x.timeouts], ['near timeouts/s', '#bc4c00', x => x.near_timeouts]],
    thresholds: () => levels(state.limits.waiters) },
  { key: 'work', title: 'Throughput', unit: '/s',
    series: p => p.kind === 'sqlite' || p.kind === 'cluster'
      ? [['leases/s', '#0969da', x => x.leases]]
      : [['queries/s', '#0969da', x => x.qps], ['slow/s', '#bc4c00', x => x.slow]] },
  { key: 'latency', title: 'Latency', unit: 'ms',
    series: p => p.kind === 'sqlite' || p.kind === 'cluster'
      ? [['lease hold p95', '#8250df', x => x.hold_p95_ms], ['lease hold p99', '#bc4c00', x => x.hold_p99_ms]]
      : [['query p95', '#8250df', x => x.lat_p95_ms], ['query p99', '#bc4c00', x => x.lat_p99_ms]] },
  { key: 'errors', title: 'Error rate', unit: '%',
    series: () => [['errors', '#cf222e', x => pct(x.error_rate)]],
    thresholds: p => levels(p.kind === 'postgres' || p.kind === 'node' ? state.limits.query_error_percent : state.limits.get_error_percent) },
  { key: 'connects', title: 'Connects', unit: '/s',
    series: () => [['connects/s', '#1a7f37', x => x.connects], ['failures/s', '#cf222e', x => x.connect_failures]] },
];

// The health checks' levels for a measure, as soft threshold lines
// (judged by /health over its window; the chart shows one-second values).
function levels(t) {
  if (!t) return [];
  const out = [];
  if (t.warn !== undefined) out.push({ label: 'health warns at', value: t.warn, soft: true, color: '#9a6700' });
  if (t.fail !== undefined) out.push({ label: 'fails at', value: t.fail, soft: true });
  return out;
}

// The tiles: [label, value of the newest point, bad?].
function tiles(p, x) {
  const work = x.qps !== null ? ['queries/s', fmt(x.qps)] : ['leases/s', fmt(x.leases)];
  const lat = x.lat_p99_ms !== null ? ['query p99', fmt(x.lat_p99_ms, 'ms')] : ['hold p99', fmt(x.hold_p99_ms, 'ms')];
  return [
    ['health', x.health, x.health === 'fail'],
    ['breaker', x.breaker.replace('_', '-'), x.breaker !== 'closed'],
    ['in use / max', x.in_use + ' / ' + x.max, x.in_use >= x.max && x.waiters > 0],
    ['idle', x.idle, false],
    ['waiters', x.waiters, x.waiters > 0],
    ['wait p99', fmt(x.wait_p99_ms, 'ms'), x.wait_p99_ms >= p.acquire_timeout_ms / 2],
    [work[0], work[1], false],
    [lat[0], lat[1], false],
    ['error rate', fmt(pct(x.error_rate), '%'), x.error_rate >= 0.05],
    ['timeouts/s', fmt(x.timeouts), x.timeouts > 0],
    ['connect failures/s', fmt(x.connect_failures), x.connect_failures > 0],
    ['leaks', x.leaks, x.leaks > 0],
  ];
}

function poolView(name) {
  if (state.views[name]) return state.views[name];
  const card = el('section', 'card pool'), title = el('h2');
  card.id = 'pool-' + name.replace(/[^\w-]/g, '_');
  card.dataset.pool = name;
  const label = el('span', null, 'pool ' + name), kind = el('span', 'muted'), health = el('span', 'badge'), breaker = el('span', 'badge');
  title.append(label, kind, health, breaker);
  const tileBox = el('div', 'tiles'), chartBox = el('div', 'charts'), charts = {};
  for (const c of CHARTS) {
    const box = el('div', 'chart'), head = el('div', 'title'), legend = el('div', 'legend'), canvas = el('canvas');
    canvas.dataset.chart = c.key;
    head.append(el('span', null, c.title + (c.unit ? ' (' + c.unit + ')' : '')), el('span', 'muted'));
    box.append(head, canvas, legend);
    chartBox.append(box);
    charts[c.key] = { canvas, legend, note: head.lastChild };
  }
  card.append(title, tileBox, chartBox);
  document.getElementById('pools').append(card);
  return (state.views[name] = { card, kind, health, breaker, tileBox, charts });
}

// Red bands: the stretches where the pool failed its health checks or its breaker was open.
function redBands(points) {
  const out = [];
  let from = null;
  for (let i = 0; i < points.length; i++) {
    const bad = points[i].health === 'fail' || points[i].breaker === 'open';
    if (bad && from === null) from = i > 0 ? points[i - 1].t : points[i].t;
    if (!bad && from !== null) { out.push({ from, to: points[i].t }); from = null; }
  }
  if (from !== null) out.push({ from, to: state.now });
  return out;
}

function drawChart(view, c, p, x, t, bands) {
  const series = c.series(p).map(([label, color, f]) => ({ label, color, values: p.points.map(f) }));
  const all = series.flatMap(s => s.values.filter(v => v !== null && isFinite(v)));
  const top = Math.max(0, ...all);
  const th = (c.thresholds ? c.thresholds(p, x) : []).filter(h => h.value !== null && h.value !== undefined);
  const shown = th.filter(h => !h.soft || h.value <= Math.max(top * 3, 1));
  view.note.textContent = th.filter(h => !shown.includes(h)).map(h => h.label + ' ' + fmt(h.value, c.unit) + ' (off scale)').join(', ');
  LidoChart.draw(view.canvas, { t, now: state.now, unit: c.unit, series, thresholds: shown, bands, floor: c.floor });
  view.legend.replaceChildren(...series.map(s => {
    const item = el('span'), swatch = el('i'), v = s.values.length ? s.values[s.values.length - 1] : null;
    swatch.style.background = s.color;
    item.append(swatch, document.createTextNode(s.label + ' ' + fmt(v, c.unit)));
    return item;
  }));
  if (c.key === 'errors' && x && Object.keys(x.errors_by_class).length)
    view.legend.append(el('span', null, 'by class (SQLSTATE): ' + Object.entries(x.errors_by_class).map(([k, v]) => k + ': ' + fmt(v) + '/s').join(', ')));
}

function renderPool(p) {
  const v = poolView(p.name), x = last(p);
  v.kind.textContent = p.kind + (p.kind === 'node' ? ' (cluster node)' : '');
  v.health.textContent = 'health ' + p.health; v.health.className = 'badge ' + p.health;
  const breaker = x ? x.breaker : 'unknown';
  v.breaker.textContent = 'breaker ' + breaker.replace('_', '-'); v.breaker.className = 'badge ' + breaker;
  if (x) v.tileBox.replaceChildren(...tiles(p, x).map(([label, value, bad]) => {
    const d = el('div', bad ? 'tile bad' : 'tile');
    d.dataset.key = label;
    d.append(el('b', null, value), el('span', null, label));
    return d;
  }));
  const t = p.points.map(pt => pt.t), bands = redBands(p.points);
  for (const c of CHARTS) drawChart(v.charts[c.key], c, p, x, t, bands);
}

function renderHealth(doc) {
  const pools = Object.values(state.pools);
  const rank = { unknown: 0, pass: 1, warn: 2, fail: 3 };
  let worst = doc.status === 'unknown' ? 'unknown' : doc.status;
  for (const p of pools) if (rank[p.health] > rank[worst]) worst = p.health;
  const panel = document.getElementById('health');
  panel.dataset.status = worst;
  const down = pools.filter(p => p.health === 'fail').map(p => p.name);
  const headline = worst === 'fail' ? 'DOWN: ' + (down.length ? down.join(', ') : 'health checks fail')
    : worst === 'warn' ? 'Degraded: some checks warn' : worst === 'pass' ? 'Healthy: every check passes' : 'waiting for the first health report…';
  document.getElementById('health-headline').textContent = headline;
  const list = document.getElementById('health-reasons');
  list.replaceChildren(...pools.flatMap(p => p.reasons.map(r => el('li', null, p.name + ' — ' + r))));
  const overall = document.getElementById('overall');
  overall.textContent = worst; overall.className = 'badge ' + worst;
  document.getElementById('desc').textContent = doc.description || '';
  const history = document.getElementById('history');
  const flips = (doc.health_history || []).slice().reverse();
  history.replaceChildren(...(flips.length ? flips.map(f => {
    const row = el('div', 'flip');
    row.append(el('span', 'muted', new Date(f.t).toLocaleTimeString()), el('span', null, f.pool),
      el('span', 'badge ' + f.from, f.from), el('span', null, '→'), el('span', 'badge ' + f.to, f.to),
      ...(f.reasons.length ? [el('div', 'muted why', f.reasons.join('; '))] : []));
    return row;
  }) : [el('p', 'empty', 'no change since lido serve started')]));
}

function renderLeaks() {
  const table = document.getElementById('leaks'), rows = [];
  const head = el('tr');
  for (const h of ['pool', 'connection', 'held', 'call site']) head.append(el('th', null, h));
  for (const p of Object.values(state.pools)) for (const l of p.leaks) {
    const r = el('tr');
    r.append(el('td', null, p.name), el('td', 'num', '#' + l.conn_id), el('td', 'num', fmt(l.held_ms, 'ms')), el('td', 'sql', l.location));
    rows.push(r);
  }
  const limits = Object.values(state.pools).map(p => p.name + ': ' + (p.leak_threshold_ms === null ? 'detection off' : 'held past ' + fmt(p.leak_threshold_ms, 'ms')));
  document.getElementById('leaks-note').textContent = limits.join(', ');
  table.replaceChildren(head, ...(rows.length ? rows : [emptyRow(4, 'no lease held past its leak threshold')]));
}

function renderClasses() {
  const pools = Object.values(state.pools).filter(p => p.classes.length);
  document.getElementById('classes-panel').hidden = !pools.length;
  if (!pools.length) return;
  const head = el('tr');
  for (const h of ['pool', 'class', 'deadline', 'calls', 'errors', 'timeouts', 'near timeouts', 'total']) head.append(el('th', h === 'pool' || h === 'class' ? null : 'num', h));
  const rows = pools.flatMap(p => p.classes.map(c => {
    const r = el('tr');
    r.append(el('td', null, p.name), el('td', null, c.class), el('td', 'num', fmt(c.deadline_ms, 'ms')), el('td', 'num', c.calls),
      el('td', 'num', c.errors), el('td', 'num', c.timeouts), el('td', 'num', c.near_timeouts), el('td', 'num', fmt(c.total_ms, 'ms')));
    return r;
  }));
  document.getElementById('classes').replaceChildren(head, ...rows);
}

function emptyRow(span, text) {
  const r = el('tr'), d = el('td', 'empty', text);
  d.colSpan = span; r.append(d);
  return r;
}

function merge(doc) {
  if (state.lastT !== null && doc.now < state.lastT) { state.pools = {}; state.lastT = null; }
  for (const p of doc.pools) {
    const old = state.pools[p.name];
    const points = (old ? old.points : []).concat(p.points).slice(-CAP);
    state.pools[p.name] = Object.assign({}, p, { points });
    const x = last(state.pools[p.name]);
    if (x && (state.lastT === null || x.t > state.lastT)) state.lastT = x.t;
  }
  state.now = doc.now;
  state.limits = doc.health_thresholds || {};
}

async function fetchJson(url) {
  const r = await fetch(url, { cache: 'no-store' });
  if (!r.ok) throw new Error(url + ' answered HTTP ' + r.status);
  return r.json();
}

async function tick() {
  const banner = document.getElementById('banner');
  try {
    const since = state.lastT === null ? '' : '?since=' + state.lastT;
    const doc = await fetchJson(EP.series + since);
    merge(doc);
    for (const p of Object.values(state.pools)) renderPool(p);
    renderHealth(doc); renderLeaks(); renderClasses();
    if (Date.now() - state.statementsAt > 4000) { state.statementsAt = Date.now(); await LidoPanels.statements(state.order); }
    await LidoPanels.cluster(state);
    banner.style.display = 'none';
    document.getElementById('updated').textContent = 'updated ' + new Date(doc.now).toLocaleTimeString();
  } catch (e) {
    // A sidecar that is away is shown; anything else is a bug in this page.
    const away = e instanceof TypeError && /fetch/i.test(e.message) || /answered HTTP/.test(e.message);
    if (!away) window.lidoErrors.push(String(e && e.stack || e));
    banner.textContent = 'cannot reach the lido sidecar: ' + e.message; banner.style.display = 'block';
  }
}

function loop() { tick().finally(() => setTimeout(loop, 1000)); }
window.addEventListener('resize', () => { for (const p of Object.values(state.pools)) renderPool(p); });

// Panels read from their own endpoints: top statements and the cluster.
const LidoPanels = (() => {
  const SORTS = [['total_time', 'total'], ['calls', 'calls'], ['p99', 'p99'], ['errors', 'errors']];

  function sortButton(order, label) {
    const b = el('button', order === state.order ? 'active' : null, label);
    b.type = 'button'; b.dataset.order = order;
    b.addEventListener('click', () => {
      state.order = order;
      statements(order).catch(e => { document.getElementById('statements-note').textContent = String(e.message); });
    });
    return b;
  }

  async function statements(order) {
    const doc = await fetchJson(EP.statements + '?order=' + encodeURIComponent(order) + '&limit=15');
    const head = el('tr'), sortable = Object.fromEntries(SORTS);
    for (const [key, label, cls] of [['', 'statement'], ['', 'class'], ['calls', '', 'num'], ['total_time', '', 'num'], ['', 'mean', 'num'],
      ['', 'p95', 'num'], ['p99', '', 'num'], ['errors', '', 'num'], ['', 'timeouts', 'num'], ['', 'rows', 'num']]) {
      const th = el('th', cls || null);
      if (key) th.append(sortButton(key, sortable[key])); else th.textContent = label;
      head.append(th);
    }
    const rows = doc.statements.map(s => {
      const r = el('tr');
      r.append(el('td', 'sql', s.query), el('td', null, s.class || ''), el('td', 'num', s.calls), el('td', 'num', fmt(s.total_ms, 'ms')),
        el('td', 'num', fmt(s.mean_ms, 'ms')), el('td', 'num', fmt(s.p95_ms, 'ms')), el('td', 'num', fmt(s.p99_ms, 'ms')),
        el('td', s.errors ? 'num bad' : 'num', s.errors), el('td', 'num', s.timeouts), el('td', 'num', s.rows));
      return r;
    });
    const note = doc.note || (doc.enabled === false ? 'statement statistics are off' : 'by ' + doc.order.replace('_', ' ') + ', ' + doc.kept + ' kept');
    document.getElementById('statements-note').textContent = note;
    document.getElementById('statements').replaceChildren(head, ...(rows.length ? rows : [emptyRow(10, doc.note ? 'none' : 'no statement yet')]));
  }

  // null once /cluster answered 404 (one server, no cluster): not asked again.
  async function cluster(st) {
    if (!st.clusterUrl) return;
    const r = await fetch(st.clusterUrl, { cache: 'no-store' });
    if (r.status === 404) { st.clusterUrl = null; return; }
    if (!r.ok) throw new Error('/cluster answered HTTP ' + r.status);
    const c = await r.json(), panel = document.getElementById('cluster-panel'), title = el('h2');
    title.append(el('span', null, 'Cluster ' + (c.pool || '')),
      el('span', 'badge ' + (c.primary ? 'pass' : 'fail'), c.primary ? 'primary ' + c.primary : 'no primary'));
    const table = el('table'), head = el('tr');
    for (const h of ['node', 'role', 'state', 'in rotation', 'lag bytes', 'lag ms', 'reason']) head.append(el('th', null, h));
    table.append(head);
    for (const n of c.nodes || []) {
      const row = el('tr'), up = el('td');
      up.append(el('span', 'badge ' + (n.up ? 'up' : 'down'), n.up ? 'up' : 'down'));
      const out = !n.up || (!n.write_target && !n.in_rotation);
      row.append(el('td', null, n.address), el('td', null, n.role), up, el('td', null, n.write_target ? 'writes' : (n.in_rotation ? 'yes' : 'no')),
        el('td', 'num', n.lag_bytes ?? '–'), el('td', 'num', n.lag_ms ?? '–'), el('td', 'muted', out ? (n.reason || '') : ''));
      table.append(row);
    }
    panel.replaceChildren(title, table);
    panel.hidden = false;
  }

  return { statements, cluster };
})();

loop();
