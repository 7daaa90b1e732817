"""The HTML of the two pages: predictions (a script that calls /api/options and /api/predict) and the comparison."""
from __future__ import annotations

from html import escape
from typing import Dict
from urllib.parse import quote

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f5f6f8;color:#1f2430}
header{background:#22385b;color:#fff;padding:10px 20px;display:flex;gap:22px;align-items:baseline}
header b{font-size:18px}header a{color:#c9dcff;text-decoration:none}header a.here{color:#fff;font-weight:600}
main{padding:14px 20px;max-width:1280px}
.panel{background:#fff;border:1px solid #d9dde6;border-radius:8px;padding:12px;margin-bottom:12px}
.controls{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-end}
label{display:flex;flex-direction:column;font-size:13px;gap:3px}
label.inline{flex-direction:row;align-items:center}
select,button{font-size:14px;padding:4px 8px}
#drop{border:2px dashed #93a4c0;border-radius:8px;padding:10px 14px;font-size:14px}
#drop.over{background:#e9f0ff}
#status{font-size:13px;color:#555}
#error{display:none;background:#fde8e8;border:1px solid #e3a5a5;color:#8a1010;padding:8px 12px;border-radius:6px}
.result{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.photo{position:relative;display:inline-block;max-width:560px}
.photo img{max-width:100%;display:block}
.box{position:absolute;border:3px solid #39e639;box-sizing:border-box}
.cropbox{position:absolute;border:1px dashed #ffd500;box-sizing:border-box}
.box span{position:absolute;left:-3px;top:-21px;background:#39e639;font-size:12px;padding:1px 4px;white-space:nowrap}
#winner{font-size:22px;font-weight:700}
.cards{display:flex;flex-direction:column;gap:10px}
.face-card,.whole-card{background:#fff;border:1px solid #d9dde6;border-radius:8px;padding:10px}
.face-card h3,.whole-card h3{margin:0 0 6px 0;font-size:15px}
.pics{display:flex;gap:8px;margin-bottom:6px}
.pics figure{margin:0;text-align:center;font-size:12px;color:#555}
.pics img{width:160px;height:160px;display:block;border:1px solid #ccc}
.bars{min-width:330px}
.bar{display:grid;grid-template-columns:110px 170px 50px;align-items:center;font-size:13px;gap:6px;margin:2px 0}
.track{background:#e6e9ef;height:14px;border-radius:3px;overflow:hidden}
.fill{background:#4c78c4;height:100%}
.bar.win{font-weight:700}.bar.win .fill{background:#f28e2b}
video{max-width:320px;display:none;border:1px solid #ccc}
table{border-collapse:collapse;font-size:13px;background:#fff}
th,td{border:1px solid #d0d5de;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
tr.best td{font-weight:700;background:#fff4e6}
.figures img{max-width:100%;border:1px solid #ccc;margin:6px 0}
.warn{background:#fff7df;border:1px solid #e8cf85;padding:6px 10px;border-radius:6px;margin:4px 0}
"""


def _head(title: str, here: str) -> str:
    links = "".join(f'<a href="{href}"{" class=here" if name == here else ""}>{name}</a>'
                    for name, href in (("Predict", "/"), ("Comparison", "/comparison")))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f'<body><header><b>emoclf</b>{links}</header><main>')


SCRIPT = r"""
const $ = id => document.getElementById(id);
let options = null, file = null, fileName = '', asked = 0, stream = null;
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (k === 'text') e.textContent = v; else e.setAttribute(k, v); }
  for (const k of kids) if (k) e.appendChild(k);
  return e;
}
function setState(state, text) { const s = $('status'); s.dataset.state = state; s.textContent = text; }
function showError(msg) {
  $('error').textContent = msg; $('error').style.display = 'block'; $('result').hidden = true; setState('error', '');
}
async function loadOptions() {
  try {
    const r = await fetch('/api/options'); const data = await r.json();
    if (!r.ok) { showError(data.error); return; }
    options = data;
  } catch (e) { showError('The server could not be reached: ' + e); return; }
  const run = $('run'), face = $('face');
  run.replaceChildren(...options.runs.map(r => el('option', {value: r.id, title: r.id,
                                                             text: r.name + ' (' + r.why + ')'})));
  face.replaceChildren(...options.faces.map(f => el('option', {value: f, text: f})));
  face.value = options.face;
  $('limit').textContent = 'up to ' + Math.round(options.max_upload_bytes / 1048576) + ' MB';
  setState('idle', 'Choose a photo, drop one here, or take one with the webcam.');
}
function choose(f, name) { file = f; fileName = name; predict(); }
async function predict() {
  if (!file || !options) return;
  $('error').style.display = 'none';
  if (file.size > options.max_upload_bytes) {
    showError('The file is ' + (file.size / 1048576).toFixed(1) + ' MB; the page takes photos up to ' +
              Math.round(options.max_upload_bytes / 1048576) + ' MB. Upload a smaller photo.');
    return;
  }
  const q = new URLSearchParams({run: $('run').value, face: $('face').value,
                                 gradcam: $('gradcam').checked ? '1' : '0', name: fileName});
  const mine = ++asked;
  setState('busy', 'Scoring ' + fileName + ' ...');
  let r, data;
  try {
    r = await fetch('/api/predict?' + q, {method: 'POST', body: file,
                                          headers: {'Content-Type': 'application/octet-stream'}});
    data = await r.json();
  } catch (e) {
    if (mine === asked) showError('No answer from the server (' + e + '). Is emoclf serve still running?');
    return;
  }
  if (mine !== asked) return;  // a newer request is on its way
  if (!r.ok) { showError(data.error || ('HTTP ' + r.status)); return; }
  render(data);
  setState('done', 'Scored ' + fileName + ' with ' + $('run').selectedOptions[0].textContent + '.');
}
function pct(v, size) { return (100 * v / size).toFixed(3) + '%'; }
function render(d) {
  const rec = d.record;
  $('winner').textContent = rec.label;
  $('winner-score').textContent = rec.score.toFixed(2);
  $('summary').textContent = d.summary + (d.gradcam_note ? '; ' + d.gradcam_note : '');
  $('face-count').textContent = rec.faces.length; $('face-count').dataset.count = rec.faces.length;
  const photo = $('photo'); photo.replaceChildren(el('img', {src: d.photo, alt: rec.image}));
  d.items.forEach((it, i) => {
    if (!it.box) return;
    const [cx, cy, cw, ch] = it.crop_box;
    photo.appendChild(el('div', {class: 'cropbox', style: `left:${pct(cx, d.width)};top:${pct(cy, d.height)};` +
                                 `width:${pct(cw, d.width)};height:${pct(ch, d.height)}`}));
    const [x, y, w, h] = it.box;
    photo.appendChild(el('div', {class: 'box', style: `left:${pct(x, d.width)};top:${pct(y, d.height)};` +
                                 `width:${pct(w, d.width)};height:${pct(h, d.height)}`},
                         el('span', {text: (i + 1) + ': ' + it.label + ' ' + it.score.toFixed(2)})));
  });
  $('cards').replaceChildren(...d.items.map(it => card(it, d.classes, !!it.box)));
  $('result').hidden = false;
}
function card(it, classes, isFace) {
  const pics = el('div', {class: 'pics'});
  const fig = (src, caption) => el('figure', {}, el('img', {src: src, alt: caption}),
                                   el('figcaption', {text: caption}));
  if (it.crop) pics.appendChild(fig(it.crop, 'square crop'));
  pics.appendChild(fig(it.input, 'model input'));
  if (it.gradcam) pics.appendChild(fig(it.gradcam, 'Grad-CAM: ' + it.label));
  const bars = el('div', {class: 'bars'});
  for (const c of classes) {
    const v = it.scores[c];
    bars.appendChild(el('div', {class: 'bar' + (c === it.label ? ' win' : ''), 'data-class': c},
      el('span', {text: c}),
      el('div', {class: 'track'}, el('div', {class: 'fill', style: `width:${(100 * v).toFixed(1)}%`})),
      el('span', {text: v.toFixed(3)})));
  }
  const title = el('h3', {}); title.textContent = it.title + ': ';
  title.appendChild(el('span', {class: 'label', text: it.label})); title.append(' (' + it.score.toFixed(2) + ')');
  return el('div', {class: isFace ? 'face-card' : 'whole-card'}, title, pics, bars);
}
$('file').addEventListener('change', e => { const f = e.target.files[0]; if (f) choose(f, f.name); });
for (const id of ['run', 'face', 'gradcam']) $(id).addEventListener('change', predict);
const drop = $('drop');
drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', e => {
  e.preventDefault(); drop.classList.remove('over');
  const f = e.dataTransfer.files[0]; if (f) choose(f, f.name);
});
$('camera').addEventListener('click', async () => {
  if (stream) { stream.getTracks().forEach(t => t.stop()); stream = null; $('video').style.display = 'none';
                $('snap').hidden = true; $('camera').textContent = 'Use the webcam'; return; }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError('This browser gives no webcam to this page: open it at http://127.0.0.1 or http://localhost ' +
              '(browsers allow cameras only there or over https).'); return;
  }
  try { stream = await navigator.mediaDevices.getUserMedia({video: true}); }
  catch (e) { showError('No webcam: ' + e.message); return; }
  $('video').srcObject = stream; $('video').style.display = 'block'; $('snap').hidden = false;
  $('camera').textContent = 'Stop the webcam';
});
$('snap').addEventListener('click', () => {
  const v = $('video'), c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight; c.getContext('2d').drawImage(v, 0, 0);
  c.toBlob(b => choose(b, 'webcam.jpg'), 'image/jpeg', 0.92);
});
loadOptions();
"""

PREDICT_BODY = """
<div class="panel controls">
  <label>Run <select id="run"></select></label>
  <label>Faces <select id="face"></select></label>
  <label class="inline"><input type="checkbox" id="gradcam"> Grad-CAM</label>
  <div id="drop"><label>Photo <span id="limit"></span>
    <input type="file" id="file" accept="image/*"></label></div>
  <button type="button" id="camera">Use the webcam</button>
  <button type="button" id="snap" hidden>Take a photo</button>
</div>
<video id="video" autoplay playsinline muted></video>
<p id="status" data-state="loading">Loading ...</p>
<div id="error" role="alert"></div>
<div id="result" hidden>
  <div class="panel">Winner: <span id="winner"></span> <span id="winner-score"></span>
    &middot; faces: <span id="face-count" data-count="0"></span> &middot; <span id="summary"></span></div>
  <div class="result"><div class="photo" id="photo"></div><div class="cards" id="cards"></div></div>
</div>
"""


def predict_page() -> str:
    """The prediction page: menus, upload, webcam and the result area, filled by its script."""
    return _head("emoclf: predict", "Predict") + PREDICT_BODY + f"<script>{SCRIPT}</script></main></body></html>"


def comparison_page(view: Dict) -> str:
    """The latest comparison (see serve.comparison.comparison_view) as a page."""
    parts = [_head("emoclf: comparison", "Comparison")]
    if not view["found"]:
        parts.append(f'<p id="no-comparison">{escape(view["message"])}</p>')
        return "".join(parts) + "</main></body></html>"
    parts.append(f'<h2>Model comparison ({len(view["rows"])} runs)</h2>')
    parts += [f'<div class="warn">{escape(w)}</div>' for w in view["warnings"]]
    parts.append(f'<p>Best model by macro F1: <b id="best">{escape(str(view["best"]))}</b> '
                 f'({escape(view["best_f1"])}). '
                 f'From {escape(view["path"])}'
                 + (' (<a href="/comparison/file/comparison.md">comparison.md</a>)' if view["markdown"] else "")
                 + (f'; inference timed on {escape(str(view["device"]))}' if view.get("device") else "") + ".</p>")
    head = "".join(f"<th>{escape(h)}</th>" for h in view["headers"])
    rows = []
    for row in view["rows"]:
        cells = "".join(f"<td>{escape(c)}</td>" for c in row)
        rows.append(f'<tr{" class=best" if row[0] == view["best"] else ""}>{cells}</tr>')
    parts.append(f'<div style="overflow-x:auto"><table id="comparison"><tr>{head}</tr>{"".join(rows)}</table></div>')
    figures = "".join(f'<h3>{escape(n)}</h3><img src="/comparison/file/{escape(quote(n))}" alt="{escape(n)}">'
                      for n in view["figures"])
    parts.append(f'<div class="figures">{figures}</div>')
    return "".join(parts) + "</main></body></html>"
