"""The page of one pair, ``<pair>/pair.html``: registered LOM and CBS compared by slider and flicker.

Self-contained and offline: relative links to the pair's pictures, inline CSS and a few
lines of inline JavaScript (no library, no URL). Without JavaScript the two images are
simply shown one below the other.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import quote

from .pictures import VIEWS

PAGE_NAME = "pair.html"

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1em;color:#222;max-width:1260px}
h1{font-size:1.3em;margin:.2em 0}.sub{color:#555;margin:.2em 0 .8em}
.controls{display:flex;flex-wrap:wrap;gap:1em;align-items:center;margin:.5em 0}
.controls input[type=range]{width:22em}
.stage{position:relative;display:inline-block;max-width:100%;line-height:0;border:1px solid #ccc}
.stage img{display:block;max-width:100%;height:auto;image-rendering:pixelated}
.stage img.top{position:absolute;left:0;top:0;width:100%;height:100%}
.stage .edge{position:absolute;top:0;bottom:0;width:2px;background:#ffeb3b;pointer-events:none}
.label{position:absolute;top:4px;padding:1px 6px;background:rgba(0,0,0,.6);color:#fff;font-size:12px;line-height:1.4}
.label.l{left:4px}.label.r{right:4px}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:10px;margin-top:1em}
.figs figure{margin:0}.figs img{width:100%;height:auto;border:1px solid #ddd}
.figs figcaption{font-size:12px;color:#444}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-weight:bold;white-space:nowrap}
.badge.none{background:#e0e0e0;color:#555}.badge.est{border:2px dashed #fff;outline:1px solid #999}
.t-good{background:#2e7d32}.t-decent{background:#9e9d24}.t-bad{background:#ef6c00}.t-poor{background:#c62828}
table.kv{border-collapse:collapse;font-size:.9em}table.kv td{border:1px solid #ddd;padding:2px 6px;vertical-align:top}
"""

_SCRIPT = """
(function(){
  var top = document.getElementById('top'), range = document.getElementById('split');
  var edge = document.getElementById('edge'), flick = document.getElementById('flicker');
  var rate = document.getElementById('rate'), timer = null;
  if (!top || !range) return;
  document.getElementById('stage').classList.add('js');
  function split(){
    var v = Number(range.value);
    top.style.clipPath = 'inset(0 ' + (100 - v) + '% 0 0)';
    edge.style.left = 'calc(' + v + '% - 1px)';
  }
  function stopFlicker(){ if (timer) { clearInterval(timer); timer = null; } top.style.visibility = 'visible'; }
  range.addEventListener('input', function(){ flick.checked = false; stopFlicker(); split(); });
  flick.addEventListener('change', function(){
    stopFlicker();
    if (flick.checked) {
      top.style.clipPath = 'none'; edge.style.left = '-10px';
      timer = setInterval(function(){
        top.style.visibility = top.style.visibility === 'hidden' ? 'visible' : 'hidden';
      }, Number(rate.value));
    } else { split(); }
  });
  rate.addEventListener('change', function(){ if (flick.checked) { flick.dispatchEvent(new Event('change')); } });
  document.addEventListener('keydown', function(ev){
    if (ev.key === 'f') { flick.checked = !flick.checked; flick.dispatchEvent(new Event('change')); }
  });
  split();
})();
"""


def _e(value) -> str:
    return escape(str(value), quote=True)


def _rel(path: Path, folder: Path) -> str:
    return _e(quote(path.relative_to(folder).as_posix(), safe="/"))


def render_pair_page(folder: Path, name: str, views: dict, summary_html: str, details: list[tuple[str, str]],
                     back_href: str) -> str:
    """The HTML of ``<pair>/pair.html``.

    ``views`` as made by :func:`styleunwarp.report.pictures.ensure_figures`; ``summary_html``
    is one line (already escaped HTML) with the tier and key metrics; ``details`` are
    ``(label, text)`` rows (parameters, backend, model, coarse alignment, ...).
    """
    reg = views.get("registered", (None, None))[0]
    cbs = views.get("cbs", (None, None))[0]
    if reg is not None and cbs is not None:
        compare = f"""<div class="controls">
<label>registered LOM ◀ <input type="range" id="split" min="0" max="100" value="50" aria-label="split position"> ▶ CBS</label>
<label><input type="checkbox" id="flicker"> flicker (key f)</label>
<label>every <select id="rate"><option value="300">0.3 s</option><option value="600" selected>0.6 s</option><option value="1200">1.2 s</option></select></label>
</div>
<div class="stage" id="stage">
<img src="{_rel(cbs, folder)}" alt="CBS of {_e(name)}">
<img class="top" id="top" src="{_rel(reg, folder)}" alt="registered LOM of {_e(name)}">
<div class="edge" id="edge"></div>
<span class="label l">registered LOM</span><span class="label r">CBS</span>
</div>
<p class="sub">Drag the slider: left of the yellow line the registered LOM, right of it the CBS; structures should continue across the line. Flicker alternates the two in place: aligned structures stand still.</p>"""
    else:
        missing = "registered LOM" if reg is None else "CBS"
        compare = f'<p class="sub">No slider comparison: the {missing} picture is missing (see the notes in the report).</p>'
    figs = []
    for view in VIEWS:
        full = views.get(view.key, (None, None))[0]
        if full is not None and full.is_file():
            figs.append(f'<figure><a href="{_rel(full, folder)}"><img src="{_rel(full, folder)}" alt="{_e(view.title)}"></a>'
                        f'<figcaption><b>{_e(view.title)}</b>: {_e(view.help)}</figcaption></figure>')
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in details)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>styleunwarp: {_e(name)}</title>
<style>{_CSS}</style>
</head>
<body>
<p><a href="{_e(back_href)}">◀ back to the report</a></p>
<h1>{_e(name)}</h1>
<p class="sub">{summary_html}</p>
{compare}
<h2>Pictures</h2>
<div class="figs">{"".join(figs)}</div>
<h2>Settings and measurements</h2>
<table class="kv">{rows}</table>
<script>{_SCRIPT}</script>
</body>
</html>
"""
