// gpt2lab's offline attention view: vanilla JavaScript, no libraries, no network.
// Builds the heatmap and lines panels from the data gpt2lab.attention.views.offline_fragment embeds
// in place of the data placeholder below.
(function () {
  const data = __DATA__;
  const root = document.getElementById(data.rootId);
  const layerSelect = root.querySelector('select.layer');
  const headSelect = root.querySelector('select.head');
  const heatmap = root.querySelector('svg.heatmap');
  const lines = root.querySelector('svg.lines');
  const NS = 'http://www.w3.org/2000/svg';
  const n = data.labels.length;
  const CELL = Math.max(6, Math.min(18, Math.floor(480 / n)));
  const ROW = 16;
  const LABEL_W = data.labelWidth;
  const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
                  '#bcbd22', '#17becf'];

  data.layers.forEach((layer, i) => {
    const o = document.createElement('option'); o.value = i; o.textContent = 'layer ' + layer;
    layerSelect.appendChild(o);
  });
  const mean = document.createElement('option'); mean.value = -1; mean.textContent = 'mean of heads';
  headSelect.appendChild(mean);
  for (let h = 0; h < data.nHeads; h++) {
    const o = document.createElement('option'); o.value = h; o.textContent = 'head ' + h;
    headSelect.appendChild(o);
  }
  layerSelect.value = data.startLayer; headSelect.value = data.startHead;

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }
  // weights are stored per (layer, head) as the lower triangle, row by row, in thousandths
  function weight(layerIdx, head, q, k) {
    const tri = data.weights[layerIdx][head];
    return tri[q * (q + 1) / 2 + k] / 1000;
  }
  function matrix(layerIdx, head) {
    const m = [];
    for (let q = 0; q < n; q++) {
      const row = new Array(q + 1);
      for (let k = 0; k <= q; k++) {
        if (head >= 0) { row[k] = weight(layerIdx, head, q, k); }
        else {
          let s = 0;
          for (let h = 0; h < data.nHeads; h++) s += weight(layerIdx, h, q, k);
          row[k] = s / data.nHeads;
        }
      }
      m.push(row);
    }
    return m;
  }

  function drawHeatmap(m, color) {
    heatmap.innerHTML = '';
    const top = LABEL_W, left = LABEL_W;
    heatmap.setAttribute('width', left + n * CELL + 10);
    heatmap.setAttribute('height', top + n * CELL + 10);
    for (let i = 0; i < n; i++) {
      const rowLabel = el('text', {x: left - 4, y: top + i * CELL + CELL * 0.75, 'text-anchor': 'end',
                                   'class': 'token query-label'}, heatmap);
      rowLabel.textContent = data.labels[i];
      const colLabel = el('text', {x: 0, y: 0, 'text-anchor': 'start', 'class': 'token key-label',
                                   transform: 'translate(' + (left + i * CELL + CELL * 0.75) + ',' + (top - 4)
                                              + ') rotate(-90)'},
                          heatmap);
      colLabel.textContent = data.labels[i];
    }
    el('rect', {x: left, y: top, width: n * CELL, height: n * CELL, fill: 'none', stroke: '#ccc'}, heatmap);
    for (let q = 0; q < n; q++) {
      for (let k = 0; k <= q; k++) {
        const w = m[q][k];
        const cell = el('rect', {x: left + k * CELL, y: top + q * CELL, width: CELL, height: CELL, fill: color,
                                 'fill-opacity': w.toFixed(3), 'class': 'cell', 'data-q': q, 'data-k': k}, heatmap);
        const tip = el('title', {}, cell);
        tip.textContent = data.labels[q] + ' \u2192 ' + data.labels[k] + ': ' + w.toFixed(3);
      }
    }
  }

  function drawLines(m, color) {
    lines.innerHTML = '';
    const leftX = LABEL_W, rightX = LABEL_W + 140;
    lines.setAttribute('width', rightX + LABEL_W);
    lines.setAttribute('height', n * ROW + 10);
    const group = el('g', {'class': 'attention-lines'}, lines);
    for (let q = 0; q < n; q++) {
      for (let k = 0; k <= q; k++) {
        if (m[q][k] < 0.005) continue;  // invisible anyway; keeps the page light
        el('line', {x1: leftX + 4, y1: q * ROW + ROW * 0.6, x2: rightX - 4, y2: k * ROW + ROW * 0.6,
                    stroke: color, 'stroke-width': 2, 'stroke-opacity': m[q][k].toFixed(3),
                    'class': 'attn-line', 'data-q': q, 'data-k': k}, group);
      }
    }
    for (let i = 0; i < n; i++) {
      const left = el('text', {x: leftX - 2, y: i * ROW + ROW * 0.8, 'text-anchor': 'end', 'class': 'token query-token',
                               'data-q': i}, lines);
      left.textContent = data.labels[i];
      const right = el('text', {x: rightX + 2, y: i * ROW + ROW * 0.8, 'text-anchor': 'start',
                                'class': 'token key-token'},
                       lines);
      right.textContent = data.labels[i];
      left.addEventListener('mouseover', () => {
        group.querySelectorAll('line').forEach(l => l.style.display = (+l.getAttribute('data-q') === i) ? '' : 'none');
      });
      left.addEventListener('mouseout', () => { group.querySelectorAll('line').forEach(l => l.style.display = ''); });
    }
  }

  function render() {
    const layerIdx = +layerSelect.value, head = +headSelect.value;
    const color = head >= 0 ? COLORS[head % COLORS.length] : '#333';
    const m = matrix(layerIdx, head);
    drawHeatmap(m, color);
    drawLines(m, color);
    root.querySelector('.status').textContent = 'layer ' + data.layers[layerIdx] + ', ' +
      (head >= 0 ? 'head ' + head : 'mean of ' + data.nHeads + ' heads');
    root.setAttribute('data-rendered', 'layer ' + data.layers[layerIdx] + ' head ' + head);
  }
  layerSelect.addEventListener('change', render);
  headSelect.addEventListener('change', render);
  render();
})();
