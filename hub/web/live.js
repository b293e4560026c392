// The customer's share page (/live/<token>): polls /live/<token>/data, which answers only for
// this booking's instrument within its window, and draws the state now, the time in use so far
// and the session's timeline. Nothing is loaded from elsewhere.
(function () {
  const POLL_MS = 5000;
  const LABEL = {
    IN_USE: 'In use', IDLE: 'Idle', FAULT: 'Fault', OFF: 'Off', UNKNOWN: 'Unknown',
    NOT_OBSERVED: 'Not observed',
  };
  const $ = (id) => document.getElementById(id);
  const dataUrl = location.pathname.replace(/\/+$/, '') + '/data';

  const utc = (ms) => new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
  function hours(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return h > 0 ? h + ' h ' + m + ' min' : m + ' min ' + (s % 60) + ' s';
  }

  function chart(d) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 1000 64');
    svg.setAttribute('preserveAspectRatio', 'none');
    const from = d.start_unix_ms;
    const span = Math.max(1, d.end_unix_ms - from);
    for (const iv of d.intervals) {
      const r = document.createElementNS(ns, 'rect');
      r.setAttribute('x', String(((iv.start_unix_ms - from) / span) * 1000));
      r.setAttribute('width', String(Math.max(1, ((iv.end_unix_ms - iv.start_unix_ms) / span) * 1000)));
      r.setAttribute('y', '8');
      r.setAttribute('height', '48');
      r.setAttribute('class', iv.kind === 'gap' ? 'gap' : iv.state);
      r.setAttribute('style', 'fill: var(--c)');
      const t = document.createElementNS(ns, 'title');
      t.textContent = (iv.kind === 'gap' ? 'Not observed' : LABEL[iv.state] || iv.state) + ': ' +
                      utc(iv.start_unix_ms) + ' – ' + utc(iv.end_unix_ms);
      r.append(t);
      svg.append(r);
    }
    const now = document.createElementNS(ns, 'line');
    const x = String(Math.min(1000, Math.max(0, ((d.generated_at_unix_ms - from) / span) * 1000)));
    for (const [k, v] of [['x1', x], ['x2', x], ['y1', '0'], ['y2', '64']]) now.setAttribute(k, v);
    now.setAttribute('stroke', '#fff');
    now.setAttribute('stroke-width', '2');
    svg.append(now);
    return svg;
  }

  function render(d) {
    const inst = d.instrument;
    $('s-instrument').textContent = inst.name || inst.instrument_id;
    $('s-where').textContent = [inst.institution, inst.site, inst.city].filter(Boolean).join(' · ');
    const state = $('s-state');
    state.className = 'pill ' + (d.state || '');
    state.textContent = d.state ? LABEL[d.state] || d.state : '';
    state.dataset.state = d.state || '';
    $('s-since').textContent = d.state_since_unix_ms ? 'since ' + utc(d.state_since_unix_ms) : '';
    const online = $('s-online');
    online.className = 'pill online ' + (d.online === false ? 'no' : 'yes');
    online.textContent = d.online === false ? 'Agent offline' : '';
    $('s-order').textContent = d.order_id + (d.customer ? ' · ' + d.customer : '');
    $('s-window').textContent = utc(d.start_unix_ms) + ' → ' + utc(d.end_unix_ms);
    $('s-inuse').textContent = hours(d.in_use_seconds);
    $('s-powered').textContent = hours(d.powered_seconds);
    $('s-gaps').textContent = hours(d.gap_seconds);
    $('s-chart').replaceChildren(chart(d));
    $('s-note').textContent = d.open
      ? 'Updated ' + utc(d.generated_at_unix_ms) + '. This link works until ' + utc(d.valid_until_unix_ms) + '.'
      : 'The live view opens at ' + utc(d.opens_at_unix_ms) + '.';
    document.body.dataset.loaded = 'true';
  }

  async function poll() {
    try {
      const res = await fetch(dataUrl, { cache: 'no-store' });
      const body = await res.json();
      if (!res.ok) {
        $('s-error').hidden = false;
        $('s-error').textContent = body.error ? body.error.message : 'HTTP ' + res.status;
        if (res.status === 404 || res.status === 410) return;  // for good: stop polling
      } else {
        $('s-error').hidden = true;
        render(body);
      }
    } catch (e) {
      $('s-error').hidden = false;
      $('s-error').textContent = 'Cannot reach the hub; retrying… (' + e.message + ')';
    }
    setTimeout(poll, POLL_MS);
  }
  poll();
})();
