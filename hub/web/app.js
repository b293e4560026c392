// instrumeter ops dashboard. Plain JavaScript, no build step, nothing loaded from the internet.
//
// Data: GET /api/v1/instruments once (and again after every stream reconnect, since the hub does
// not replay missed events, and every few minutes for the day's totals); live changes from the
// Server-Sent Events stream /api/v1/stream, applied to the tiles without reloading the page.
// Scale: instruments are grouped by city; past COLLAPSE_ABOVE instruments every city starts
// collapsed and only the tiles of opened cities exist in the page.
'use strict';

(function () {
  const STATES = ['IN_USE', 'IDLE', 'FAULT', 'OFF', 'UNKNOWN', 'NOT_OBSERVED'];
  const LABEL = {
    IN_USE: 'In use', IDLE: 'Idle', FAULT: 'Fault', OFF: 'Off', UNKNOWN: 'Unknown',
    NOT_OBSERVED: 'Not observed',
  };
  const COLLAPSE_ABOVE = 400;
  const REFRESH_MS = 120000;      // totals and last-seen; states come from the stream
  const PANEL_REFRESH_MS = 30000; // the open side panel's timeline and agent health
  const DAY_MS = 86400000;

  // A marker a test can read to prove that the page was not reloaded.
  window.__instrumeterPageId = Math.random().toString(36).slice(2);

  const byId = new Map();        // instrument_id -> instrument JSON
  const tileOf = new Map();      // instrument_id -> tile element (opened cities only)
  const openCities = new Set();
  let firstRender = true;
  let selected = null;
  let streamUp = false;
  let summaryDirty = false;

  // The API token, when the hub requires one (docs/security.md): opened once as
  // /#token=<token>, kept for this tab only (sessionStorage) and removed from the address bar.
  const TOKEN_KEY = 'instrumeter-api-token';
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, '', location.pathname + location.search);
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  const api = (url) => fetch(url, {
    cache: 'no-store',
    headers: token ? { Authorization: 'Bearer ' + token } : {},
  });
  const needsToken = (res) => res.status === 401
    ? new Error('this hub requires an API token: open the dashboard as ' + location.origin + '/#token=<token>')
    : null;

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const svgEl = (tag, attrs) => {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  };

  // ---- formatting -------------------------------------------------------------------------
  function duration(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return '–';
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + 's';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm';
    const h = Math.floor(m / 60);
    if (h < 48) return h + 'h ' + (m % 60) + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }
  // Under an hour in minutes and seconds; above in hours.
  const hours = (seconds) => (seconds < 3600 ? duration(seconds * 1000) : (seconds / 3600).toFixed(seconds < 36000 ? 2 : 1) + ' h');
  const ago = (unixMs) => (unixMs ? duration(Date.now() - unixMs) + ' ago' : 'never');
  const utc = (unixMs) => (unixMs ? new Date(unixMs).toISOString().replace('T', ' ').slice(0, 19) + ' UTC' : '–');

  // ---- filters ----------------------------------------------------------------------------
  function filters() {
    return {
      q: $('search').value.trim().toLowerCase(),
      city: $('city').value,
      state: $('state').value,
      offline: $('offline-only').checked,
    };
  }
  function matches(inst, f) {
    if (f.city && inst.city !== f.city) return false;
    if (f.state && inst.state !== f.state) return false;
    if (f.offline && inst.online !== false) return false;
    if (f.q) {
      const hay = (inst.instrument_id + ' ' + inst.name + ' ' + inst.institution + ' ' +
                   inst.site + ' ' + inst.city).toLowerCase();
      if (!hay.includes(f.q)) return false;
    }
    return true;
  }

  // ---- summary ----------------------------------------------------------------------------
  function renderSummary() {
    summaryDirty = false;
    const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
    let offline = 0;
    for (const inst of byId.values()) {
      counts[inst.state] = (counts[inst.state] || 0) + 1;
      if (inst.online === false) offline++;
    }
    const active = $('state').value;
    const box = $('summary');
    box.replaceChildren();
    const card = (cls, n, label, onClick, isActive) => {
      const b = el('button', 'count ' + cls + (isActive ? ' active' : ''));
      b.type = 'button';
      b.append(el('span', 'n', n.toLocaleString('en-US')), el('span', 'l', label));
      b.addEventListener('click', onClick);
      box.append(b);
      return b;
    };
    card('total', byId.size, 'Instruments', () => { $('state').value = ''; $('offline-only').checked = false; render(); }, !active);
    for (const s of STATES) {
      card(s, counts[s], LABEL[s], () => { $('state').value = active === s ? '' : s; render(); }, active === s)
        .dataset.state = s;
    }
    card('offline', offline, 'Agents offline', () => { $('offline-only').checked = !$('offline-only').checked; render(); },
         $('offline-only').checked).dataset.state = 'offline';
  }
  function markSummaryDirty() {
    if (summaryDirty) return;
    summaryDirty = true;
    requestAnimationFrame(renderSummary);
  }

  // ---- tiles ------------------------------------------------------------------------------
  // "Booked · customer · remote · until 14:00", "Free now · next 09:00", ... (UTC, as the
  // dashboard's days; the panel has the full times).
  const hhmm = (unixMs) => new Date(unixMs).toISOString().slice(11, 16);
  function bookingLine(inst) {
    const cur = inst.current_booking;
    const next = inst.next_booking;
    if (cur) {
      return ['Booked', cur.customer, cur.remote ? 'remote' : null, 'until ' + hhmm(cur.end_unix_ms)]
        .filter(Boolean).join(' · ');
    }
    const head = inst.free_now ? 'Free now' : 'Unbooked';
    return next ? head + ' · next ' + hhmm(next.start_unix_ms) : head;
  }
  function fillTile(tile, inst) {
    tile.className = 'tile ' + inst.state + (inst.online === false ? ' offline' : '') +
                     (selected === inst.instrument_id ? ' selected' : '');
    tile.dataset.state = inst.state;
    tile.dataset.online = String(inst.online);
    tile.querySelector('.t-name').textContent = inst.name || inst.instrument_id;
    tile.querySelector('.t-inst').textContent = inst.institution || inst.instrument_id;
    tile.querySelector('.t-label').textContent = LABEL[inst.state] || inst.state;
    tile.querySelector('.t-since').textContent = inst.state_since_unix_ms ? duration(Date.now() - inst.state_since_unix_ms) : '';
    tile.dataset.free = String(inst.free_now);
    tile.querySelector('.t-book').textContent = bookingLine(inst);
    tile.title = inst.instrument_id + ' · ' + (LABEL[inst.state] || inst.state) +
                 (inst.state_since ? ' since ' + utc(inst.state_since_unix_ms) : '') +
                 (inst.online === false ? ' · agent OFFLINE since ' + utc(inst.online_since_unix_ms) : '') +
                 '\n' + bookingLine(inst);
  }
  function makeTile(inst) {
    const tile = el('button');
    tile.type = 'button';
    tile.dataset.id = inst.instrument_id;
    tile.append(el('span', 'badge', 'AGENT OFFLINE'), el('span', 't-name'), el('span', 't-inst'),
                el('span', 't-book'));
    const st = el('span', 't-state');
    st.append(el('span', 't-label'), el('span', 't-since'));
    tile.append(st);
    tile.addEventListener('click', () => openPanel(inst.instrument_id));
    fillTile(tile, inst);
    tileOf.set(inst.instrument_id, tile);
    return tile;
  }

  const cityOf = (inst) => inst.city || '(no city)';

  function groupByCity(list) {
    const cities = new Map();
    for (const inst of list) {
      const city = cityOf(inst);
      if (!cities.has(city)) cities.set(city, []);
      cities.get(city).push(inst);
    }
    return [...cities.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  }

  function cityHeader(summary, city, members) {
    const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
    let offline = 0;
    for (const i of members) { counts[i.state]++; if (i.online === false) offline++; }
    summary.replaceChildren();
    summary.append(el('span', 'city-name', city), el('span', 'city-total', members.length + ' instrument' + (members.length === 1 ? '' : 's')));
    const bar = el('span', 'bar');
    for (const s of STATES) {
      if (!counts[s]) continue;
      const seg = el('i', s);
      seg.style.width = (100 * counts[s] / members.length) + '%';
      seg.style.background = 'var(--c)';
      seg.title = LABEL[s] + ': ' + counts[s];
      bar.append(seg);
    }
    const nums = el('span', 'city-counts');
    for (const s of ['IN_USE', 'IDLE', 'FAULT']) {
      const span = el('span');
      span.append(el('b', null, String(counts[s])), ' ' + LABEL[s].toLowerCase());
      nums.append(span);
    }
    if (offline) nums.append(el('span', 'warn', offline + ' offline'));
    summary.append(bar, nums);
  }

  function fillCity(body, members) {
    const sites = new Map();
    for (const inst of members) {
      const site = (inst.institution ? inst.institution + ' · ' : '') + (inst.site || '');
      if (!sites.has(site)) sites.set(site, []);
      sites.get(site).push(inst);
    }
    for (const [site, list] of [...sites.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
      const sec = el('section', 'site');
      sec.append(el('h3', null, site || '(no site)'));
      const grid = el('div', 'tiles');
      list.sort((a, b) => (a.name || a.instrument_id).localeCompare(b.name || b.instrument_id));
      for (const inst of list) grid.append(makeTile(inst));
      sec.append(grid);
      body.append(sec);
    }
  }

  function render() {
    const f = filters();
    const list = [...byId.values()].filter((i) => matches(i, f));
    const groups = $('groups');
    tileOf.clear();
    groups.replaceChildren();
    if (firstRender && byId.size > 0) {
      firstRender = false;
      if (byId.size <= COLLAPSE_ABOVE) for (const inst of byId.values()) openCities.add(cityOf(inst));
    }
    const narrowed = f.q || f.state || f.offline || f.city;
    if (!list.length) {
      groups.append(el('p', 'empty', byId.size ? 'No instrument matches the filters.' : 'No instruments registered yet.'));
    }
    for (const [city, members] of groupByCity(list)) {
      const det = el('details', 'city');
      det.dataset.city = city;
      // A narrowed view small enough to show opens its groups; otherwise each keeps its choice.
      det.open = openCities.has(city) || (narrowed && list.length <= COLLAPSE_ABOVE);
      const summary = el('summary');
      cityHeader(summary, city, members);
      const body = el('div', 'city-body');
      det.append(summary, body);
      if (det.open) fillCity(body, members);
      det.addEventListener('toggle', () => {
        if (det.open) {
          openCities.add(city);
          if (!body.childElementCount) fillCity(body, [...byId.values()].filter((i) => cityOf(i) === city && matches(i, filters())));
        } else {
          openCities.delete(city);
          for (const t of body.querySelectorAll('.tile')) tileOf.delete(t.dataset.id);
          body.replaceChildren();
        }
      });
      groups.append(det);
    }
    markSummaryDirty();
  }

  function fillCityOptions() {
    const sel = $('city');
    const current = sel.value;
    const cities = [...new Set([...byId.values()].map((i) => i.city).filter(Boolean))].sort();
    sel.replaceChildren(el('option', null, 'All cities'));
    sel.firstChild.value = '';
    for (const c of cities) { const o = el('option', null, c); o.value = c; sel.append(o); }
    sel.value = cities.includes(current) ? current : '';
  }

  // ---- data -------------------------------------------------------------------------------
  async function loadList() {
    try {
      const res = await api('/api/v1/instruments');
      if (!res.ok) throw needsToken(res) || new Error('HTTP ' + res.status);
      const body = await res.json();
      byId.clear();
      for (const inst of body.instruments) byId.set(inst.instrument_id, inst);
      fillCityOptions();
      render();
      if (selected && byId.has(selected)) refreshPanel();
    } catch (err) {
      if (!byId.size) $('groups').replaceChildren(el('p', 'empty', 'Cannot load instruments: ' + err.message));
    }
  }

  // A live change: the event carries the instrument's whole row as the hub has it now.
  function applyChange(inst) {
    const before = byId.get(inst.instrument_id);
    byId.set(inst.instrument_id, inst);
    const f = filters();
    // A new instrument, or one that enters or leaves the filtered view: draw the page again.
    if (!before || matches(before, f) !== matches(inst, f) || cityOf(before) !== cityOf(inst)) {
      render();
    } else {
      const tile = tileOf.get(inst.instrument_id);
      if (tile) fillTile(tile, inst);
      const city = cityOf(inst);
      const head = document.querySelector('details.city[data-city="' + CSS.escape(city) + '"] > summary');
      if (head) cityHeader(head, city, [...byId.values()].filter((i) => cityOf(i) === city && matches(i, f)));
      markSummaryDirty();
    }
    if (selected === inst.instrument_id) refreshPanel();
  }

  let source = null;
  function setLive(up) {
    streamUp = up;
    $('banner').hidden = up;
    $('live-dot').className = 'dot ' + (up ? 'live' : 'down');
    $('live-text').textContent = up ? 'live' : 'reconnecting…';
  }
  function connect() {
    // EventSource cannot send headers: the stream takes the token as a parameter.
    source = new EventSource('/api/v1/stream' + (token ? '?access_token=' + encodeURIComponent(token) : ''));
    let opened = false;
    source.onopen = () => {
      setLive(true);
      // The hub does not replay what was missed while disconnected: reload the list.
      if (opened || byId.size) loadList();
      opened = true;
    };
    source.onerror = () => {
      setLive(false);
      if (source.readyState === EventSource.CLOSED) {  // refused (e.g. 503): retry ourselves
        source.close();
        setTimeout(connect, 5000);
      }
    };
    const onChange = (e) => applyChange(JSON.parse(e.data));
    source.addEventListener('state', onChange);
    source.addEventListener('online', onChange);
    source.addEventListener('resync', () => loadList());
  }

  // ---- side panel ---------------------------------------------------------------------------
  function openPanel(id) {
    if (selected && tileOf.get(selected)) tileOf.get(selected).classList.remove('selected');
    selected = id;
    if (tileOf.get(id)) tileOf.get(id).classList.add('selected');
    $('panel').hidden = false;
    refreshPanel();
  }
  function closePanel() {
    if (selected && tileOf.get(selected)) tileOf.get(selected).classList.remove('selected');
    selected = null;
    $('panel').hidden = true;
  }

  let panelSeq = 0;
  async function refreshPanel() {
    const id = selected;
    if (!id) return;
    const seq = ++panelSeq;
    const now = Date.now();
    const today = Math.floor(now / DAY_MS) * DAY_MS;
    const enc = encodeURIComponent(id);
    const iso = (ms) => new Date(ms).toISOString();
    try {
      const [detail, day, week] = await Promise.all([
        api('/api/v1/instruments/' + enc).then((r) => r.json()),
        api('/api/v1/instruments/' + enc + '/timeline?from=' + iso(today) + '&to=' + iso(today + DAY_MS)).then((r) => r.json()),
        api('/api/v1/instruments/' + enc + '/timeline?from=' + iso(today - 6 * DAY_MS) + '&to=' + iso(today + DAY_MS)).then((r) => r.json()),
      ]);
      if (seq !== panelSeq || selected !== id) return;
      if (detail.error) throw new Error(detail.error.message);
      fillPanel(detail, day, week, today);
    } catch (err) {
      $('p-where').textContent = 'Cannot load ' + id + ': ' + err.message;
    }
  }

  function fillPanel(d, day, week, today) {
    $('p-name').textContent = d.name || d.instrument_id;
    $('p-where').textContent = [d.instrument_id, d.institution, d.site, d.city, d.region !== d.city ? d.region : null].filter(Boolean).join(' · ');
    const st = $('p-state');
    st.className = 'pill ' + d.state;
    st.textContent = LABEL[d.state] || d.state;
    $('p-since').textContent = d.state_since_unix_ms ? 'for ' + duration(Date.now() - d.state_since_unix_ms) + ' (since ' + utc(d.state_since_unix_ms) + ')' : '';
    const on = $('p-online');
    on.className = 'pill online ' + (d.online === true ? 'yes' : d.online === false ? 'no' : '');
    on.textContent = d.online === true ? 'Agent online' : d.online === false ? 'Agent OFFLINE' : 'Agent status unknown';
    $('p-powered').textContent = hours(d.today_powered_seconds);
    $('p-inuse').textContent = hours(d.today_in_use_seconds);
    $('p-gaps').textContent = hours(d.today_gap_seconds);

    $('p-today').replaceChildren(dayChart(day, today));
    $('p-week').replaceChildren(weekChart(week, today));

    const b = $('p-bookings');
    b.replaceChildren();
    const booking = (label, bk) => {
      const div = el('div', 'booking');
      div.append(el('div', 'k', label));
      div.append(el('div', null, bk ? [bk.order_id, bk.customer, bk.remote ? 'remote' : null, utc(bk.start_unix_ms) + ' → ' + utc(bk.end_unix_ms)].filter(Boolean).join(' · ') : 'none'));
      b.append(div);
    };
    b.append(el('div', 'free-now ' + (d.free_now ? 'yes' : 'no'),
                d.free_now ? 'Free now' : (d.current_booking ? 'Booked now' : 'In use, unbooked')));
    if (!d.current_booking && !d.next_booking) {
      b.append(el('div', 'muted', 'No bookings in the next 7 days.'));
    } else {
      booking('Current', d.current_booking);
      booking('Next', d.next_booking);
    }

    const agent = $('p-agent');
    agent.replaceChildren();
    const row = (k, v, cls) => { agent.append(el('dt', null, k)); agent.append(el('dd', cls, v)); };
    const h = d.agent_health;
    row('Version', d.agent_version || 'unknown');
    row('Last seen', d.last_seen_unix_ms ? ago(d.last_seen_unix_ms) + ' (' + utc(d.last_seen_unix_ms) + ')' : 'never');
    row('Outbox', d.outbox_depth + ' event' + (d.outbox_depth === 1 ? '' : 's') + ' waiting for the hub', d.outbox_depth > 100 ? 'warn' : null);
    row('Status', d.online === null ? 'no status message yet' : (d.online ? 'online' : 'offline') + ' since ' + utc(d.online_since_unix_ms));
    if (h) {
      row('Heartbeat', (h.heartbeat_interval_ms ? 'every ' + duration(h.heartbeat_interval_ms) + ', ' : '') + 'last ' + ago(h.reported_at_unix_ms));
      if (h.sources_disagree) row('Sources', 'disagree now (check the adapters)', 'warn');
    }
    if (d.agent_meter) row('Agent meter', hours(d.agent_meter.powered_seconds) + ' powered, ' + hours(d.agent_meter.in_use_seconds) + ' in use (all time)');
    row('Events stored', String(d.events_stored));

    const ad = $('p-adapters');
    ad.replaceChildren();
    if (!h) {
      ad.append(el('div', 'muted', 'Adapter health not known yet (it comes with the next heartbeat).'));
    } else {
      for (const a of h.adapters) {
        const line = el('div', 'adapter');
        line.append(el('span', a.ok ? 'ok' : 'bad', a.ok ? 'OK' : 'ERROR'), el('b', null, a.name), el('span', 'muted', a.type));
        if (a.error) line.append(el('span', 'warn', a.error));
        if (a.errors_total) line.append(el('span', 'muted', a.errors_total + ' errors in total'));
        ad.append(line);
      }
    }
  }

  // One horizontal bar per day; each interval a rect coloured by state, gaps hatched.
  function barRects(svg, intervals, from, to, x0, width, y, height) {
    for (const iv of intervals) {
      const a = Math.max(iv.start_unix_ms, from);
      const b = Math.min(iv.end_unix_ms, to);
      if (b <= a) continue;
      const x = x0 + (a - from) / (to - from) * width;
      const w = Math.max(0.75, (b - a) / (to - from) * width);
      const r = svgEl('rect', { x, y, width: w, height, fill: iv.kind === 'gap' ? 'url(#gap)' : 'var(--c)', class: iv.kind === 'gap' ? '' : iv.state });
      const t = svgEl('title');
      t.textContent = (iv.kind === 'gap' ? 'Gap (nobody observed)' : LABEL[iv.state] || iv.state) + ': ' + utc(iv.start_unix_ms) + ' → ' + utc(iv.end_unix_ms) + ' (' + duration(iv.end_unix_ms - iv.start_unix_ms) + ')';
      r.append(t);
      svg.append(r);
    }
  }
  function defs(svg) {
    const d = svgEl('defs');
    const p = svgEl('pattern', { id: 'gap', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' });
    p.append(svgEl('rect', { width: 6, height: 6, fill: '#3a2227' }), svgEl('rect', { width: 3, height: 6, fill: 'var(--gap)' }));
    d.append(p);
    svg.append(d);
  }
  function dayChart(tl, today) {
    const W = 520, X0 = 4, BW = 512, H = 52;
    const svg = svgEl('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'Timeline for today' });
    defs(svg);
    svg.append(svgEl('rect', { x: X0, y: 4, width: BW, height: 28, rx: 3, class: 'bg' }));
    barRects(svg, tl.intervals || [], today, today + DAY_MS, X0, BW, 4, 28);
    for (let h = 0; h <= 24; h += 3) {
      const x = X0 + h / 24 * BW;
      svg.append(svgEl('line', { x1: x, x2: x, y1: 32, y2: 36, class: 'grid' }));
      const t = svgEl('text', { x: Math.min(Math.max(x, 8), W - 12), y: 48, 'text-anchor': 'middle', class: 'axis' });
      t.textContent = String(h).padStart(2, '0') + ':00';
      svg.append(t);
    }
    const nx = X0 + (Date.now() - today) / DAY_MS * BW;
    svg.append(svgEl('line', { x1: nx, x2: nx, y1: 1, y2: 35, class: 'now-line' }));
    return svg;
  }
  function weekChart(tl, today) {
    const W = 520, X0 = 64, BW = 452, ROW = 20, H = 7 * ROW + 18;
    const svg = svgEl('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'Timeline for the last seven days' });
    defs(svg);
    for (let i = 0; i < 7; i++) {
      const dayStart = today - (6 - i) * DAY_MS;
      const y = i * ROW + 2;
      const label = svgEl('text', { x: 0, y: y + 12, class: 'day' });
      label.textContent = new Date(dayStart).toISOString().slice(5, 10) + (i === 6 ? ' today' : '');
      svg.append(label, svgEl('rect', { x: X0, y, width: BW, height: ROW - 6, rx: 2, class: 'bg' }));
      barRects(svg, tl.intervals || [], dayStart, dayStart + DAY_MS, X0, BW, y, ROW - 6);
    }
    for (let h = 0; h <= 24; h += 6) {
      const x = X0 + h / 24 * BW;
      const t = svgEl('text', { x: Math.min(x, W - 14), y: H - 2, 'text-anchor': 'middle', class: 'axis' });
      t.textContent = String(h).padStart(2, '0') + 'h';
      svg.append(t);
    }
    return svg;
  }

  // ---- wiring -------------------------------------------------------------------------------
  function tick() {
    $('clock').textContent = new Date().toISOString().slice(11, 19) + ' UTC';
  }
  function tickTiles() {
    for (const [id, tile] of tileOf) {
      const inst = byId.get(id);
      if (inst && inst.state_since_unix_ms) tile.querySelector('.t-since').textContent = duration(Date.now() - inst.state_since_unix_ms);
    }
  }

  let searchTimer = null;
  $('search').addEventListener('input', () => { clearTimeout(searchTimer); searchTimer = setTimeout(render, 150); });
  $('city').addEventListener('change', render);
  $('state').addEventListener('change', render);
  $('offline-only').addEventListener('change', render);
  $('expand-all').addEventListener('click', () => { for (const i of byId.values()) openCities.add(cityOf(i)); render(); });
  $('collapse-all').addEventListener('click', () => { openCities.clear(); render(); });
  $('p-close').addEventListener('click', closePanel);
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closePanel(); });

  setLive(false);
  $('live-text').textContent = 'connecting…';
  $('banner').hidden = true;
  loadList();
  connect();
  setInterval(tick, 1000);
  setInterval(tickTiles, 15000);
  tick();
  setInterval(() => { if (streamUp) loadList(); }, REFRESH_MS);
  setInterval(() => { if (selected) refreshPanel(); }, PANEL_REFRESH_MS);
})();
