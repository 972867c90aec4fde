// The experiment page: fetches /experiments/{id}/data.json, renders three tabs, polls for changes.
// An AI experiment's page (data-ai) shows its runs in the History table (tab "Runs") instead of
// suggestions and observations; its plots draw the ended runs (each made one observation).
// Everything user-supplied (names, metadata) goes into the page through textContent only.
'use strict';

(function () {
  const app = document.getElementById('app');
  if (!app) return;
  const POLL_MS = 5000;
  const PAGE_SIZE = 100;
  const MAX_CATEGORIES_FOR_COLOR = 24;
  const $ = (id) => document.getElementById(id);
  const ai = app.dataset.ai === '1';
  const noun = ai ? 'run' : 'observation';
  const TABS = ai ? ['history', 'analysis'] : ['suggestions', 'history', 'analysis'];

  let data = null;
  let etag = null;
  let plotlyPromise = null;
  const view = { tab: TABS[0], page: 0, failedOnly: false, key: '', value: '', axes: null };
  // The runs plot's page: runs older than `before` (null: the newest); `newer` the cursors back.
  const runsView = { before: null, newer: [], etag: null, url: null, body: null };

  // ---- small helpers -------------------------------------------------------------------------
  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function fmt(value) {
    if (value === null || value === undefined) return '';
    if (typeof value === 'number') {
      if (Number.isInteger(value)) return String(value);
      return String(Number(value.toPrecision(6)));
    }
    return String(value);
  }

  function utc(ts) {
    return new Date(ts * 1000).toISOString().replace('T', ' ').slice(0, 19);
  }

  function age(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }

  function setStatus(text, isError) {
    const status = $('status');
    status.textContent = text;
    status.classList.toggle('error', Boolean(isError));
  }

  // Metadata columns that have a value in some row (instance_id, column 0, always first).
  function usedKeys(rows, metaIndex) {
    const used = new Set([0]);
    for (const row of rows) {
      const meta = row[metaIndex];
      for (let i = 0; i < meta.length; i++) if (meta[i] !== null && meta[i] !== undefined) used.add(i);
    }
    return Array.from(used).sort((a, b) => a - b);
  }

  function metricLabel(metric) {
    return metric.name || 'value';
  }

  // ---- data ----------------------------------------------------------------------------------
  // The server sends the wire's objects per row; tables and plots want positions: assignments by
  // parameter, values by metric, metadata by one shared key list (instance_id first).
  function columnar(raw) {
    const keys = ['instance_id'];
    const index = new Map([['instance_id', 0]]);
    const metaRow = (meta) => {
      const row = [];
      if (!meta) return row;
      for (const key of Object.keys(meta)) {
        let col = index.get(key);
        if (col === undefined) { col = keys.length; keys.push(key); index.set(key, col); }
        row[col] = meta[key];
      }
      return row;
    };
    const names = raw.parameters.map((p) => p.name);
    const byParameter = (assigned) => names.map((n) => (assigned && n in assigned ? assigned[n] : null));
    const metricNames = raw.metrics.map((m) => m.name || '');
    const byMetric = (values) => {
      const found = new Map((values || []).map((v) => [v.name || '', v.value]));
      return metricNames.map((n) => (found.has(n) ? found.get(n) : null));
    };
    raw.suggestions = raw.suggestions.map((r) => [r[0], r[1], byParameter(r[2]), metaRow(r[3])]);
    raw.observations = raw.observations.map((r) =>
      [r[0], r[1], r[2], r[3], byParameter(r[4]), byMetric(r[5]), metaRow(r[6])]);
    if (raw.runs) {
      // A run row, shaped as an observation row plus [state, observation id, name,
      // stopped_at_step, stopping_reason] (the server's early-stopping answer); `failed`
      // is the run's state, values come as the run's {metric: {value, value_stddev}}.
      const runValues = (values) => Object.entries(values || {}).map(([name, v]) => ({ name, value: v.value }));
      raw.runs = raw.runs.map((r) => [r[0], r[1], r[2] === 'failed' ? 1 : 0, r[3], byParameter(r[5]),
        byMetric(runValues(r[6])), metaRow(r[7]), r[2], r[4], r[8], r[9], r[10]]);
      raw.observations = raw.runs.filter((r) => r[7] !== 'active'); // the plots' rows
    }
    raw.metadata_keys = keys;
    return raw;
  }

  async function load() {
    const headers = etag ? { 'If-None-Match': etag } : {};
    let response;
    try {
      response = await fetch(app.dataset.dataUrl, { headers, credentials: 'same-origin', cache: 'no-cache' });
    } catch (err) {
      setStatus('Cannot reach the server (' + err + '); retrying.', true);
      return;
    }
    if (response.status === 304) {
      if (data) renderSuggestions(); // ages move on
      setStatus('Up to date · checked ' + new Date().toLocaleTimeString());
      return;
    }
    if (response.status === 401) {
      window.location.assign('/signin');
      return;
    }
    if (!response.ok) {
      setStatus('The server answered ' + response.status + '; retrying.', true);
      return;
    }
    etag = response.headers.get('ETag');
    data = columnar(await response.json());
    data.clockOffset = data.now - Date.now() / 1000;
    render();
    setStatus('Updated ' + new Date().toLocaleTimeString() + ' · refreshes every ' + POLL_MS / 1000 + ' s');
  }

  function poll() {
    const next = () => window.setTimeout(poll, POLL_MS);
    if (document.hidden) { next(); return; }
    load().finally(next);
  }

  // ---- rendering -----------------------------------------------------------------------------
  function render() {
    renderSummary();
    renderSuggestions();
    renderHistory();
    if (view.tab === 'analysis') renderAnalysis();
    app.dataset.observations = String(data.observations.length);
    if (ai) app.dataset.runs = String(data.runs.length);
    app.dataset.suggestions = String(data.suggestions.length);
    app.dataset.rendered = String(Number(app.dataset.rendered || '0') + 1);
    if (window.performance && performance.mark) performance.mark('optfleet-rendered');
  }

  // The History table's rows: an AI experiment's runs (every state), else the observations.
  function tableRows() {
    return ai ? data.runs : data.observations;
  }

  function runSummary(e) {
    const count = (state) => data.runs.filter((r) => r[7] === state).length;
    const budget = e.observation_budget ? ' of a budget of ' + e.observation_budget : '';
    return data.runs.length + ' runs' + budget + ' · ' + count('active') + ' active · ' +
      count('completed') + ' completed · ' + count('failed') + ' failed' +
      (e.parallel_bandwidth ? ' (parallel bandwidth ' + e.parallel_bandwidth + ')' : '') +
      (e.state !== 'active' ? ' · ' + e.state : '') + costSummary() + stoppingSummary();
  }

  function renderSummary() {
    const e = data.experiment;
    if (ai) {
      $('exp-name').textContent = e.name;
      $('summary').textContent = runSummary(e);
      return;
    }
    const failed = data.observations.filter((o) => o[2] === 1).length;
    const budget = e.observation_budget ? ' of a budget of ' + e.observation_budget : '';
    $('exp-name').textContent = e.name;
    $('summary').textContent =
      e.observation_count + ' observations' + budget + ' · ' + failed + ' failed · ' +
      e.open_suggestion_count + ' open suggestions' +
      (e.parallel_bandwidth ? ' (parallel bandwidth ' + e.parallel_bandwidth + ')' : '') +
      (e.state !== 'active' ? ' · ' + e.state : '') + costSummary() + stoppingSummary();
  }

  // The server splits the observations' cost (suggestion_server/domain/cost_split.py, the rule
  // `optfleet status` uses too); the page only shows its figures.
  function dollars(usd) {
    return usd === null ? 'unknown' : '$' + usd.toFixed(4);
  }

  function costSummary() {
    const cost = data.cost;
    if (!cost.priced) return '';
    const n = cost.unknown_attempts;
    const why = n ? n + (n === 1 ? " observation's" : " observations'") +
      ' earlier attempts have no recorded cost' : '';
    if (cost.total.usd === null) {
      return ' · ' + noun + 's cost unknown (a price is unknown' + (why ? '; ' + why : '') + ')';
    }
    return ' · ' + noun + 's cost ' + dollars(cost.total.usd) + ' (wasted: failed ' +
      dollars(cost.failed.usd) + ', earlier attempts ' + dollars(cost.earlier_attempts.usd) +
      (why ? ': ' + why : '') + ')';
  }

  // Early stopping's figures, from the server as well (domain/stopping_savings.py).
  function stoppingSummary() {
    const s = data.cost.stopping;
    if (!s.stopped) return '';
    return ' · stopped early: ' + s.stopped + (s.stopped === 1 ? ' run' : ' runs') + ' spent ' +
      dollars(s.spent.usd) + ', estimated saving ' + dollars(s.estimated_saving.usd) +
      (s.note ? ' (unknown: ' + s.note + ')' : '');
  }

  function fillHead(table, names) {
    const head = table.tHead;
    head.replaceChildren();
    const tr = document.createElement('tr');
    for (const name of names) tr.appendChild(el('th', name));
    head.appendChild(tr);
  }

  function renderSuggestions() {
    const table = $('suggestions-table');
    const rows = data.suggestions;
    const keys = usedKeys(rows, 3);
    const rest = keys.slice(1);
    fillHead(table, ['Id', 'Age', 'instance_id', ...data.parameters.map((p) => p.name),
      ...rest.map((k) => data.metadata_keys[k])]);
    const body = table.tBodies[0];
    const fragment = document.createDocumentFragment();
    for (const row of rows) {
      const tr = document.createElement('tr');
      tr.dataset.id = String(row[0]);
      tr.appendChild(el('td', row[0]));
      tr.appendChild(el('td', age(serverNow() - row[1])));
      tr.appendChild(el('td', fmt(row[3][0]), 'instance'));
      for (const value of row[2]) tr.appendChild(el('td', fmt(value), 'num'));
      for (const k of rest) tr.appendChild(el('td', fmt(row[3][k]), 'meta'));
      tr.addEventListener('click', () => showSuggestion(row));
      fragment.appendChild(tr);
    }
    body.replaceChildren(fragment);
    $('suggestions-empty').hidden = rows.length > 0;
  }

  function filteredObservations() {
    let rows = tableRows();
    if (view.failedOnly) rows = rows.filter((o) => o[2] === 1);
    if (view.key !== '' && view.value !== '') {
      const k = Number(view.key);
      rows = rows.filter((o) => o[6][k] !== undefined && o[6][k] !== null && String(o[6][k]) === view.value);
    }
    return rows;
  }

  function renderFilterChoices(keys) {
    const select = $('filter-key');
    const wanted = keys.map(String);
    const present = Array.from(select.options).slice(1).map((o) => o.value);
    if (wanted.join(',') !== present.join(',')) {
      const chosen = select.value;
      select.replaceChildren(el('option', '(any key)'));
      select.options[0].value = '';
      for (const k of keys) {
        const option = el('option', data.metadata_keys[k]);
        option.value = String(k);
        select.appendChild(option);
      }
      select.value = wanted.includes(chosen) ? chosen : '';
    }
    const list = $('filter-values');
    list.replaceChildren();
    if (select.value !== '') {
      const k = Number(select.value);
      const seen = new Set();
      for (const o of tableRows()) {
        const v = o[6][k];
        if (v !== undefined && v !== null) seen.add(String(v));
        if (seen.size >= 500) break;
      }
      for (const v of Array.from(seen).sort()) {
        const option = document.createElement('option');
        option.value = v;
        list.appendChild(option);
      }
    }
  }

  function renderHistory() {
    const table = $('history-table');
    const keys = usedKeys(tableRows(), 6);
    renderFilterChoices(keys);
    const costKey = data.metadata_keys.indexOf(data.cost.metadata_key);
    const stopKeys = data.cost.stopping.metadata_keys;
    const stepKey = data.metadata_keys.indexOf(stopKeys.stopped_at_step);
    const reasonKey = data.metadata_keys.indexOf(stopKeys.stopping_reason);
    const shownApart = [costKey, stepKey, reasonKey, data.metadata_keys.indexOf(stopKeys.stopped_early)];
    const rest = keys.slice(1).filter((k) => !shownApart.includes(k));
    // The agent's stamp; for a run without one, the server's own answer to its checkpoints.
    const stopInfo = (row) => {
      const step = stepKey < 0 ? null : row[6][stepKey];
      if (step !== undefined && step !== null) return [step, reasonKey < 0 ? null : row[6][reasonKey]];
      return ai && row[10] !== null ? [row[10], row[11]] : null;
    };
    const stopped = (row) => {
      const stop = stopInfo(row);
      return stop === null ? '' : 'step ' + fmt(stop[0]) + (stop[1] == null ? '' : ' · ' + stop[1]);
    };
    fillHead(table, ['Id', 'Created (UTC)', ai ? 'State' : 'Status', 'instance_id', 'Cost (USD)', 'Stopped early',
      ...data.metrics.map(metricLabel), ...data.parameters.map((p) => p.name), ...rest.map((k) => data.metadata_keys[k])]);
    const rows = filteredObservations();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    view.page = Math.min(view.page, pages - 1);
    const shown = rows.slice(view.page * PAGE_SIZE, (view.page + 1) * PAGE_SIZE);
    const fragment = document.createDocumentFragment();
    for (const row of shown) {
      const tr = document.createElement('tr');
      tr.dataset.id = String(row[0]);
      if (row[2] === 1) tr.className = 'failed';
      tr.appendChild(el('td', row[0]));
      tr.appendChild(el('td', utc(row[1])));
      if (ai) tr.appendChild(el('td', row[7], { failed: 'bad', completed: 'good', active: 'active' }[row[7]]));
      else tr.appendChild(el('td', row[2] === 1 ? 'failed' : 'ok', row[2] === 1 ? 'bad' : 'good'));
      tr.appendChild(el('td', fmt(row[6][0]), 'instance'));
      tr.appendChild(el('td', costKey < 0 ? '' : fmt(row[6][costKey]), 'num cost'));
      tr.appendChild(el('td', stopped(row), 'stopped'));
      for (let i = 0; i < data.metrics.length; i++) tr.appendChild(el('td', fmt(row[5][i]), 'num'));
      for (const value of row[4]) tr.appendChild(el('td', fmt(value), 'num'));
      for (const k of rest) tr.appendChild(el('td', fmt(row[6][k]), 'meta'));
      tr.addEventListener('click', () => (ai ? showRun(row) : showObservation(row)));
      fragment.appendChild(tr);
    }
    table.tBodies[0].replaceChildren(fragment);
    $('history-count').textContent = rows.length + ' of ' + tableRows().length + ' ' + noun + 's';
    $('page-info').textContent = 'page ' + (view.page + 1) + ' of ' + pages;
    $('page-prev').disabled = view.page === 0;
    $('page-next').disabled = view.page >= pages - 1;
  }

  // ---- details dialog ------------------------------------------------------------------------
  function showDetail(title, pairs) {
    $('detail-title').textContent = title;
    const body = $('detail-table').tBodies[0];
    const fragment = document.createDocumentFragment();
    for (const [name, value, className] of pairs) {
      const tr = document.createElement('tr');
      if (className) tr.className = className;
      tr.appendChild(el('th', name));
      const td = el('td', fmt(value));
      td.dataset.key = name;
      tr.appendChild(td);
      fragment.appendChild(tr);
    }
    body.replaceChildren(fragment);
    const dialog = $('detail');
    if (!dialog.open) dialog.showModal();
  }

  function metadataPairs(meta) {
    const pairs = [];
    for (let k = 0; k < meta.length; k++) {
      if (meta[k] !== null && meta[k] !== undefined) {
        pairs.push(['metadata.' + data.metadata_keys[k], meta[k], 'meta']);
      }
    }
    return pairs;
  }

  function serverNow() {
    return Date.now() / 1000 + data.clockOffset;
  }

  function showSuggestion(row) {
    showDetail('Suggestion ' + row[0], [
      ['id', row[0]],
      ['state', 'open'],
      ['created (UTC)', utc(row[1])],
      ['age', age(serverNow() - row[1])],
      ...data.parameters.map((p, i) => [p.name, row[2][i]]),
      ...metadataPairs(row[3]),
    ]);
  }

  function showObservation(row) {
    showDetail('Observation ' + row[0] + (row[2] === 1 ? ' (failed)' : ''), [
      ['id', row[0]],
      ['suggestion', row[3]],
      ['created (UTC)', utc(row[1])],
      ['failed', row[2] === 1 ? 'yes' : 'no', row[2] === 1 ? 'bad' : ''],
      ...data.metrics.map((m, i) => [metricLabel(m), row[5][i]]),
      ...data.parameters.map((p, i) => [p.name, row[4][i]]),
      ...metadataPairs(row[6]),
    ]);
  }

  function showRun(row) {
    showDetail('Run ' + row[0] + (row[9] ? ' · ' + row[9] : '') + (row[2] === 1 ? ' (failed)' : ''), [
      ['id', row[0]],
      ['name', row[9]],
      ['state', row[7], row[2] === 1 ? 'bad' : ''],
      ['suggestion', row[3]],
      ['observation', row[8]],
      ['created (UTC)', utc(row[1])],
      ...(row[10] === null ? [] : [['stopped at step', row[10]], ['stopping reason', row[11]]]),
      ...data.metrics.map((m, i) => [metricLabel(m), row[5][i]]),
      ...data.parameters.map((p, i) => [p.name, row[4][i]]),
      ...metadataPairs(row[6]),
    ]);
  }

  // ---- analysis ------------------------------------------------------------------------------
  // An axis: a parameter, a metric or a metadata key; categorical when its values are text.
  function axes() {
    const all = [];
    data.parameters.forEach((p, i) => all.push({
      id: 'p:' + p.name, label: p.name, kind: 'parameter', get: (o) => o[4][i],
      categories: p.categories,
    }));
    data.metrics.forEach((m, i) => all.push({
      id: 'm:' + metricLabel(m), label: metricLabel(m), kind: 'metric', get: (o) => o[5][i], categories: null,
    }));
    usedKeys(data.observations, 6).forEach((k) => {
      const get = (o) => (o[6][k] === undefined ? null : o[6][k]);
      const values = data.observations.map(get).filter((v) => v !== null);
      if (values.length === 0) return;
      const text = values.some((v) => typeof v === 'string');
      all.push({
        id: 'k:' + data.metadata_keys[k], label: data.metadata_keys[k], kind: 'metadata',
        get: text ? (o) => { const v = get(o); return v === null ? null : String(v); } : get,
        categories: text ? Array.from(new Set(values.map(String))).sort() : null,
      });
    });
    return all;
  }

  function loadPlotly() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!plotlyPromise) {
      plotlyPromise = new Promise((resolve, reject) => {
        const script = document.createElement('script');
        script.src = app.dataset.plotlyUrl;
        script.onload = () => resolve(window.Plotly);
        script.onerror = () => { plotlyPromise = null; reject(new Error('could not load Plotly')); };
        document.head.appendChild(script);
      });
    }
    return plotlyPromise;
  }

  function fillSelect(select, options, preferred) {
    const current = select.value || preferred;
    select.replaceChildren();
    for (const [value, label] of options) {
      const option = el('option', label);
      option.value = value;
      select.appendChild(option);
    }
    if (options.some(([value]) => value === current)) select.value = current;
  }

  function renderAxisChooser(all) {
    const box = $('axes');
    if (view.axes === null) {
      view.axes = new Set(all.filter((a) => a.kind !== 'metadata').map((a) => a.id));
    }
    const present = Array.from(box.querySelectorAll('input')).map((i) => i.value);
    if (present.join('\n') === all.map((a) => a.id).join('\n')) return;
    box.replaceChildren(el('legend', 'Axes'));
    for (const axis of all) {
      const label = el('label', null, 'axis ' + axis.kind);
      const input = document.createElement('input');
      input.type = 'checkbox';
      input.value = axis.id;
      input.checked = view.axes.has(axis.id);
      input.dataset.kind = axis.kind;
      input.dataset.categorical = axis.categories ? '1' : '0';
      input.addEventListener('change', () => {
        if (input.checked) view.axes.add(axis.id); else view.axes.delete(axis.id);
        renderAnalysis();
      });
      label.appendChild(input);
      label.appendChild(document.createTextNode(' ' + axis.label + (axis.categories ? ' (categorical)' : '')));
      box.appendChild(label);
    }
  }

  function numeric(axis, value) {
    if (value === null || value === undefined) return null;
    if (axis.categories) {
      const index = axis.categories.indexOf(String(value));
      return index < 0 ? null : index;
    }
    return typeof value === 'number' ? value : null;
  }

  function historyTraces(chronological) {
    const index = Number($('history-metric').value || '0');
    const metric = data.metrics[index];
    const xs = [];
    const ys = [];
    const best = [];
    let bestSoFar = null;
    const maximize = !metric || metric.objective !== 'minimize';
    const byCost = $('history-x').value === 'cost';
    const costs = data.cost.cumulative_usd;  // the server's running total, oldest first
    chronological.forEach((o, n) => {
      const v = o[5][index];
      if (o[2] === 1 || v === null || v === undefined) return;
      if (byCost && costs[n] === null) return;  // unknown cost: no point rather than a wrong one
      xs.push(byCost ? costs[n] : n + 1);
      ys.push(v);
      if (bestSoFar === null || (maximize ? v > bestSoFar : v < bestSoFar)) bestSoFar = v;
      best.push(bestSoFar);
    });
    const failed = chronological.filter((o) => o[2] === 1).length;
    return {
      traces: [
        { x: xs, y: ys, type: 'scatter', mode: 'markers', name: metric ? metricLabel(metric) : 'value' },
        { x: xs, y: best, type: 'scatter', mode: 'lines', line: { shape: 'hv' }, name: 'best so far' },
      ],
      layout: {
        margin: { t: 30, r: 20, b: 40, l: 60 },
        xaxis: { title: { text: byCost ? 'cumulative cost (USD)' : noun + ' number' } },
        yaxis: { title: { text: metric ? metricLabel(metric) : 'value' } },
        title: { text: failed ? failed + ' failed ' + noun + 's not shown' : '', font: { size: 12 } },
      },
    };
  }

  function fullHistoryTraces(chronological, byId) {
    const yAxis = byId.get($('full-y').value);
    const colorAxis = byId.get($('full-color').value);
    if (!yAxis) return { traces: [], layout: {} };
    const points = [];
    chronological.forEach((o, n) => {
      const y = yAxis.get(o);
      if (y !== null && y !== undefined) points.push({ x: n + 1, y, o });
    });
    const text = (p) => noun + ' ' + p.o[0] + (p.o[2] === 1 ? ' (failed: ' + fmt(p.o[6][data.metadata_keys.indexOf('failure_reason')]) + ')' : '');
    const traces = [];
    if (colorAxis && colorAxis.categories && colorAxis.categories.length <= MAX_CATEGORIES_FOR_COLOR) {
      const groups = new Map();
      for (const p of points) {
        const key = fmt(colorAxis.get(p.o)) || '(none)';
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(p);
      }
      for (const [key, group] of groups) {
        traces.push({
          x: group.map((p) => p.x), y: group.map((p) => p.y), text: group.map(text),
          type: 'scatter', mode: 'markers', name: key,
          marker: { symbol: group.map((p) => (p.o[2] === 1 ? 'x' : 'circle')) },
        });
      }
    } else {
      const colors = colorAxis ? points.map((p) => numeric(colorAxis, colorAxis.get(p.o))) : null;
      traces.push({
        x: points.map((p) => p.x), y: points.map((p) => p.y), text: points.map(text),
        type: 'scatter', mode: 'markers', name: yAxis.label,
        marker: {
          symbol: points.map((p) => (p.o[2] === 1 ? 'x' : 'circle')),
          color: colors || undefined, colorscale: colors ? 'Viridis' : undefined,
          showscale: Boolean(colors), colorbar: colors ? { title: { text: colorAxis.label } } : undefined,
        },
      });
    }
    const yLayout = { title: { text: yAxis.label } };
    if (yAxis.categories) yLayout.type = 'category';
    return {
      traces,
      layout: {
        margin: { t: 20, r: 20, b: 40, l: 60 }, xaxis: { title: { text: noun + ' number' } },
        yaxis: yLayout, showlegend: traces.length > 1,
      },
    };
  }

  function parcoordsTrace(chronological, all, byId) {
    const chosen = all.filter((a) => view.axes.has(a.id));
    const limit = Number($('parcoords-limit').value || '0');
    const latest = limit > 0 ? chronological.slice(-limit) : chronological;
    const rows = latest.filter((o) => chosen.every((a) => numeric(a, a.get(o)) !== null));
    const dimensions = chosen.map((axis) => {
      const dim = { label: axis.label, values: rows.map((o) => numeric(axis, axis.get(o))) };
      if (axis.categories) {
        dim.tickvals = axis.categories.map((_, i) => i);
        dim.ticktext = axis.categories;
        dim.range = [0, Math.max(1, axis.categories.length - 1)];
      }
      return dim;
    });
    const colorAxis = byId.get($('parcoords-color').value);
    const line = {};
    if (colorAxis) {
      line.color = rows.map((o) => { const v = numeric(colorAxis, colorAxis.get(o)); return v === null ? 0 : v; });
      line.colorscale = 'Viridis';
      line.showscale = true;
    }
    $('parcoords-status').textContent = rows.length + ' of the latest ' + latest.length + ' ' +
      (ai ? 'ended runs' : 'observations') + ' (of ' + chronological.length + ') have a value on every chosen axis.';
    return { traces: [{ type: 'parcoords', dimensions, line }], layout: { margin: { t: 60, r: 60, b: 30, l: 60 } } };
  }

  // ---- value vs step per run (a page of runs from runs.json) -----------------------------------
  async function loadRuns() {
    const url = app.dataset.runsUrl + (runsView.before === null ? '' : '?before=' + runsView.before);
    const headers = runsView.url === url && runsView.etag ? { 'If-None-Match': runsView.etag } : {};
    const response = await fetch(url, { headers, credentials: 'same-origin', cache: 'no-cache' });
    if (response.status === 304) return runsView.body;
    if (!response.ok) throw new Error('runs: the server answered ' + response.status);
    runsView.etag = response.headers.get('ETag');
    runsView.url = url;
    runsView.body = await response.json();
    return runsView.body;
  }

  function valueOf(values, metric) {
    const name = metric ? metric.name || '' : '';
    const found = values.find((v) => (v.name || '') === name) || (data.metrics.length === 1 ? values[0] : null);
    return found ? found.value : null;
  }

  // One line per run from its checkpoints; runs the server stopped are grey and dashed, with a
  // red cross at the step they were stopped.
  function runTraces(page) {
    const metric = data.metrics[Number($('runs-metric').value || '0')];
    const traces = [];
    const stops = { x: [], y: [], text: [] };
    for (const run of page.runs) {
      const xs = [];
      const ys = [];
      for (const [step, values] of run.checkpoints) {
        const v = valueOf(values, metric);
        if (v !== null && v !== undefined) { xs.push(step); ys.push(v); }
      }
      const stopped = run.stopped_at_step !== null;
      const label = 'run ' + run.id + (stopped ? ' (stopped at step ' + run.stopped_at_step + ': ' + run.stopping_reason + ')' : '');
      traces.push({
        x: xs, y: ys, type: 'scatter', mode: xs.length === 1 ? 'markers' : 'lines', name: label, showlegend: false,
        hovertemplate: label + '<br>step %{x}: %{y}<extra></extra>',
        line: stopped ? { dash: 'dash', color: '#9a9a9a', width: 1 } : { width: 1.5 },
        meta: { run: run.id, stopped },
      });
      if (stopped) {
        let at = -1;
        xs.forEach((x, i) => { if (x <= run.stopped_at_step) at = i; });
        if (at >= 0) { stops.x.push(xs[at]); stops.y.push(ys[at]); stops.text.push(label); }
      }
    }
    traces.push({
      x: stops.x, y: stops.y, text: stops.text, type: 'scatter', mode: 'markers', name: 'stopped early here',
      marker: { symbol: 'x', size: 9, color: '#c0392b' }, hoverinfo: 'text', meta: { stops: true },
    });
    const first = page.runs.length ? page.runs[page.runs.length - 1].id : null;
    const last = page.runs.length ? page.runs[0].id : null;
    $('runs-info').textContent = page.runs.length
      ? page.runs.length + ' runs (ids ' + first + '–' + last + ') of ' + page.total : '';
    $('runs-status').textContent = page.runs.length
      ? stops.x.length + ' of these runs were stopped early (grey, dashed; × where they stopped).'
      : 'No training runs: workers report them when the experiment has a training_monitor.';
    $('plot-runs').hidden = page.total === 0;
    $('runs-newer').disabled = runsView.newer.length === 0;
    $('runs-older').disabled = page.next_before === null;
    return {
      traces,
      layout: {
        margin: { t: 20, r: 20, b: 40, l: 60 }, showlegend: true,
        xaxis: { title: { text: 'step' } },
        yaxis: { title: { text: metric ? metricLabel(metric) : 'value' } },
      },
    };
  }

  function renderRuns(Plotly, config) {
    return loadRuns().then((page) => {
      const plot = runTraces(page);
      return Plotly.react($('plot-runs'), plot.traces, plot.layout, config);
    }).then(() => {
      app.dataset.runsPlotted = String(Number(app.dataset.runsPlotted || '0') + 1);
    });
  }

  function renderAnalysis() {
    const all = axes();
    const byId = new Map(all.map((a) => [a.id, a]));
    fillSelect($('history-metric'), data.metrics.map((m, i) => [String(i), metricLabel(m)]), '0');
    fillSelect($('runs-metric'), data.metrics.map((m, i) => [String(i), metricLabel(m)]), '0');
    const firstMetric = all.find((a) => a.kind === 'metric');
    const axisOptions = all.map((a) => [a.id, a.label + ' (' + a.kind + ')']);
    fillSelect($('full-y'), axisOptions, firstMetric ? firstMetric.id : '');
    fillSelect($('full-color'), [['', '(none)'], ...axisOptions], 'k:instance_id');
    fillSelect($('parcoords-color'), [['', '(none)'], ...axisOptions], firstMetric ? firstMetric.id : '');
    renderAxisChooser(all);
    const chronological = data.observations.slice().reverse();
    loadPlotly().then((Plotly) => {
      const config = { responsive: true, displaylogo: false };
      const plots = [
        ['plot-history', historyTraces(chronological)],
        ['plot-full', fullHistoryTraces(chronological, byId)],
        ['plot-parcoords', parcoordsTrace(chronological, all, byId)],
      ];
      // One after the other: each plot appears as soon as it is drawn.
      let chain = Promise.resolve();
      for (const [id, plot] of plots) {
        chain = chain.then(() => Plotly.react($(id), plot.traces, plot.layout, config));
        if (id === 'plot-history') chain = chain.then(() => renderRuns(Plotly, config));
      }
      return chain;
    }).then(() => {
      $('plot-status').textContent = '';
      app.dataset.plotted = String(Number(app.dataset.plotted || '0') + 1);
    }).catch((err) => {
      $('plot-status').textContent = 'The plots could not be drawn: ' + err;
    });
  }

  // ---- wiring --------------------------------------------------------------------------------
  function showTab(name) {
    view.tab = name;
    for (const button of document.querySelectorAll('[data-tab]')) {
      button.setAttribute('aria-selected', String(button.dataset.tab === name));
    }
    for (const tab of ['suggestions', 'history', 'analysis']) $('tab-' + tab).hidden = tab !== name;
    if (name === 'analysis' && data) renderAnalysis();
  }

  for (const button of document.querySelectorAll('[data-tab]')) {
    button.addEventListener('click', () => showTab(button.dataset.tab));
  }
  $('filter-failed').addEventListener('change', (e) => { view.failedOnly = e.target.checked; view.page = 0; renderHistory(); });
  $('filter-key').addEventListener('change', (e) => { view.key = e.target.value; view.value = ''; $('filter-value').value = ''; view.page = 0; renderHistory(); });
  $('filter-value').addEventListener('input', (e) => { view.value = e.target.value; view.page = 0; renderHistory(); });
  $('filter-clear').addEventListener('click', () => {
    view.failedOnly = false; view.key = ''; view.value = ''; view.page = 0;
    $('filter-failed').checked = false; $('filter-key').value = ''; $('filter-value').value = '';
    renderHistory();
  });
  $('page-prev').addEventListener('click', () => { view.page = Math.max(0, view.page - 1); renderHistory(); });
  $('page-next').addEventListener('click', () => { view.page += 1; renderHistory(); });
  $('runs-older').addEventListener('click', () => {
    if (!runsView.body || runsView.body.next_before === null) return;
    runsView.newer.push(runsView.before);
    runsView.before = runsView.body.next_before;
    renderAnalysis();
  });
  $('runs-newer').addEventListener('click', () => {
    if (runsView.newer.length === 0) return;
    runsView.before = runsView.newer.pop();
    renderAnalysis();
  });
  for (const id of ['history-metric', 'history-x', 'runs-metric', 'full-y', 'full-color', 'parcoords-color', 'parcoords-limit']) {
    $(id).addEventListener('change', () => renderAnalysis());
  }
  const requested = window.location.hash.replace('#', '');
  if (TABS.includes(requested)) showTab(requested);
  load().finally(() => window.setTimeout(poll, POLL_MS));
})();
