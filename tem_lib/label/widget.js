// The labelling widget's view (anywidget ESM; plain DOM and canvas 2D, no framework).
// State lives in Python (tem_lib.label.widget.LabelWidget): this view draws the micrograph and
// its shapes, and sends each edit as a message {type: "edit", action, id, ...}; Python applies
// it, journals it and answers with the shapes' new state.

const STATUS_STYLE = {
  proposed: { dash: [4, 3], alpha: 0.9, width: 1.5 },
  accepted: { dash: [], alpha: 1.0, width: 2 },
  drawn: { dash: [], alpha: 1.0, width: 2 },
  labelled: { dash: [], alpha: 0.8, width: 1.5 },
  rejected: { dash: [2, 4], alpha: 0.6, width: 1 },
  deleted: { dash: [2, 4], alpha: 0.0, width: 1 },
};

function el(tag, attrs = {}, text = "") {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

function pointInPolygon(x, y, pts) {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i], [xj, yj] = pts[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function ellipsePoints(e, n = 48) {
  const [cx, cy, major, minor, angle] = e;
  const t = (angle * Math.PI) / 180, a = major / 2, b = minor / 2;
  const c = Math.cos(t), s = Math.sin(t), out = [];
  for (let k = 0; k < n; k++) {
    const p = (2 * Math.PI * k) / n, u = a * Math.cos(p), v = b * Math.sin(p);
    out.push([cx + u * c + v * s, cy - u * s + v * c]); // major axis along (cos t, -sin t), y down
  }
  return out;
}

function outlineOf(s) {
  if (s.kind === "polygon") return s.points;
  if (s.kind === "ellipse") return ellipsePoints(s.ellipse);
  return s.outline && s.outline.length ? s.outline : [];
}

function render({ model, el: root }) {
  root.classList.add("tem-label");
  root.innerHTML = "";
  const bar = el("div", { class: "tem-label-bar" });
  const canvasBox = el("div", { class: "tem-label-canvasbox", tabindex: "0" });
  const canvas = el("canvas", { class: "tem-label-canvas" });
  const status = el("div", { class: "tem-label-status", role: "status" });
  canvasBox.appendChild(canvas);
  root.append(bar, canvasBox, status);

  const picker = el("select", { "data-role": "image", title: "micrograph (ranked: the most informative first)" });
  const button = (label, action, title) => {
    const b = el("button", { "data-action": action, title }, label);
    b.addEventListener("click", () => { act(action); canvasBox.focus(); });
    bar.appendChild(b);
    return b;
  };
  bar.appendChild(picker);
  button("◀", "prev", "previous proposal (shift+N)");
  button("▶", "next", "next proposal to review (N)");
  button("Accept", "accept", "accept the selected proposal (A)");
  button("Reject", "reject", "reject the selected proposal (R)");
  button("Delete", "delete", "delete the selected defect (Del / X)");
  button("Polygon", "polygon", "draw a polygon: click its corners, Enter or double-click to close (P)");
  button("Ellipse", "ellipse", "draw an ellipse: drag its major axis, move for the minor one, click (E)");
  button("Fit", "fit", "whole micrograph (F); wheel: zoom, drag: pan");
  button("Done + save", "save", "this micrograph is labelled: save the labels (S)");
  const classBox = el("span", { class: "tem-label-classes" });
  bar.appendChild(classBox);
  const scoreBox = el("label", { class: "tem-label-score", title: "proposals scoring below this are hidden (not saved)" },
    "score ≥ ");
  const scoreInput = el("input", { type: "number", min: "0", max: "1", step: "0.05", "data-role": "min-score" });
  scoreBox.appendChild(scoreInput);
  bar.appendChild(scoreBox);
  scoreInput.addEventListener("change", () => {
    const v = Math.min(1, Math.max(0, Number(scoreInput.value) || 0));
    scoreInput.value = String(v);
    model.set("min_score", v);
    model.save_changes();
  });

  const ctx = canvas.getContext("2d");
  let bitmap = null, shapes = [], byId = new Map(), selected = null;
  let view = { scale: 1, tx: 0, ty: 0 };
  let mode = "select", drawing = [], ellipseDraft = null, drawClass = null;
  let drag = null, frame = 0;

  const classes = () => model.get("classes");
  // a proposal not yet reviewed that scores below the box's value is hidden (Python counts it so)
  const shown = (s) => !(s.status === "proposed" && (s.score ?? 1) < model.get("min_score"));
  const colour = (cid) => (classes().find((c) => c.id === cid) || { color: "#ffff00" }).color;

  function setShapes(list) {
    shapes = list;
    byId = new Map(shapes.map((s) => [s.id, s]));
    for (const s of shapes) s._poly = outlineOf(s);
    for (const s of shapes) s._bbox = bboxOf(s._poly);
    if (selected !== null && !byId.has(selected)) selected = null;
    redraw();
  }
  function bboxOf(p) {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const [x, y] of p) { x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y); }
    return [x0, y0, x1, y1];
  }

  function classButtons() {
    classBox.innerHTML = "";
    classes().forEach((c, k) => {
      const b = el("button", { "data-class": String(c.id), title: `class ${c.name}: relabel the selected / draw as (${k + 1})` },
        `${k + 1} ${c.display || c.name}`);
      b.style.borderBottom = `3px solid ${c.color}`;
      b.addEventListener("click", () => { classKey(c.id); canvasBox.focus(); });
      classBox.appendChild(b);
    });
    if (drawClass === null && classes().length) drawClass = classes()[0].id;
  }

  function imageOptions() {
    picker.innerHTML = "";
    for (const it of model.get("images")) {
      const o = el("option", { value: it.name }, it.label);
      if (it.name === model.get("image_name")) o.selected = true;
      picker.appendChild(o);
    }
  }
  picker.addEventListener("change", () => model.send({ type: "open", name: picker.value }));

  async function loadImage() {
    const data = model.get("image_png");
    if (!data || !data.byteLength) { bitmap = null; redraw(); return; }
    const blob = new Blob([data], { type: "image/png" });
    bitmap = await createImageBitmap(blob);
    fit();
  }

  function resize() {
    const w = Math.max(320, canvasBox.clientWidth || 800);
    const h = model.get("height_px");
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  }
  function fit() {
    resize();
    if (!bitmap) return redraw();
    const s = Math.min(canvas.width / bitmap.width, canvas.height / bitmap.height);
    view = { scale: s, tx: (canvas.width - bitmap.width * s) / 2, ty: (canvas.height - bitmap.height * s) / 2 };
    redraw();
  }
  const toImage = (px, py) => [(px - view.tx) / view.scale, (py - view.ty) / view.scale];

  function redraw() {
    if (frame) return;
    frame = requestAnimationFrame(() => { frame = 0; paint(); });
  }
  function path(poly) {
    ctx.beginPath();
    poly.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
  }
  function paint() {
    resize();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#202020";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(view.scale, 0, 0, view.scale, view.tx, view.ty);
    ctx.imageSmoothingEnabled = view.scale < 2;
    if (bitmap) ctx.drawImage(bitmap, 0, 0);
    const [vx0, vy0] = toImage(0, 0), [vx1, vy1] = toImage(canvas.width, canvas.height);
    const lw = 1 / view.scale;
    for (const s of shapes) {
      const st = STATUS_STYLE[s.status];
      if (!st.alpha || !s._poly.length || !shown(s)) continue;
      const b = s._bbox;
      if (b[2] < vx0 || b[0] > vx1 || b[3] < vy0 || b[1] > vy1) continue;
      ctx.globalAlpha = st.alpha;
      ctx.strokeStyle = s.status === "rejected" ? "#9a9a9a" : colour(s.class_id);
      ctx.lineWidth = st.width * lw * (s.id === selected ? 2 : 1);
      ctx.setLineDash(st.dash.map((d) => d * lw));
      path(s._poly);
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
    ctx.setLineDash([]);
    const sel = byId.get(selected);
    if (sel && sel._poly.length) {
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 1 * lw;
      const [x0, y0, x1, y1] = sel._bbox, pad = 4 * lw;
      ctx.strokeRect(x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad);
    }
    if (drawing.length) {
      ctx.strokeStyle = colour(drawClass);
      ctx.lineWidth = 2 * lw;
      ctx.beginPath();
      drawing.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.stroke();
    }
    if (ellipseDraft && ellipseDraft.e) {
      ctx.strokeStyle = colour(drawClass);
      ctx.lineWidth = 2 * lw;
      path(ellipsePoints(ellipseDraft.e));
      ctx.stroke();
    }
    canvas.dataset.view = [view.scale, view.tx, view.ty].join(",");
    canvas.dataset.mode = mode;
    canvas.dataset.selected = selected === null ? "" : String(selected);
  }

  function hit(x, y) {
    let best = null, bestArea = Infinity;
    const tol = 3 / view.scale;
    for (const s of shapes) {
      if (s.status === "deleted" || !s._poly.length || !shown(s)) continue;
      const b = s._bbox;
      if (x < b[0] - tol || x > b[2] + tol || y < b[1] - tol || y > b[3] + tol) continue;
      const area = (b[2] - b[0] + 1) * (b[3] - b[1] + 1);
      const inside = pointInPolygon(x, y, s._poly) || (b[2] - b[0] < 6 && b[3] - b[1] < 6);
      if (inside && area < bestArea) { best = s.id; bestArea = area; }
    }
    return best;
  }

  function centre(id) {
    const s = byId.get(id);
    if (!s) return;
    const [x0, y0, x1, y1] = s._bbox, cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    const [vx0, vy0] = toImage(0, 0), [vx1, vy1] = toImage(canvas.width, canvas.height);
    if (cx < vx0 || cx > vx1 || cy < vy0 || cy > vy1) {
      view.tx = canvas.width / 2 - cx * view.scale;
      view.ty = canvas.height / 2 - cy * view.scale;
    }
  }
  function step(dir) {
    const todo = shapes.filter((s) => s.status === "proposed" && shown(s))
      .sort((a, b) => (b.score || 0) - (a.score || 0));
    const pool = todo.length ? todo : shapes.filter((s) => s.status !== "deleted" && shown(s));
    if (!pool.length) { selected = null; return redraw(); }
    const k = pool.findIndex((s) => s.id === selected);
    selected = pool[(k + dir + pool.length) % pool.length].id;
    if (k < 0 && dir < 0) selected = pool[pool.length - 1].id;
    centre(selected);
    redraw();
  }

  function edit(action, id, extra = {}) {
    model.send({ type: "edit", action, id, ...extra });
  }
  function act(action) {
    if (action === "next") return step(1);
    if (action === "prev") return step(-1);
    if (action === "fit") return fit();
    if (action === "save") return model.send({ type: "save" });
    if (action === "polygon" || action === "ellipse") {
      mode = mode === action ? "select" : action;
      drawing = []; ellipseDraft = null;
      return redraw();
    }
    if (selected === null) return;
    const id = selected;
    if (action === "accept" || action === "reject" || action === "delete") {
      edit(action, id);
      if (action !== "delete") {
        const s = byId.get(id);
        if (s) s.status = action === "accept" ? "accepted" : "rejected"; // shown at once; Python confirms
        step(1);
      }
    }
  }
  function classKey(cid) {
    drawClass = cid;
    if (selected !== null && mode === "select") edit("relabel", selected, { class_id: cid });
    for (const b of classBox.children) b.classList.toggle("tem-label-active", Number(b.dataset.class) === cid);
  }
  function finishPolygon() {
    if (drawing.length >= 3) edit("draw", null, { kind: "polygon", points: drawing, class_id: drawClass });
    drawing = [];
    redraw();
  }

  canvasBox.addEventListener("keydown", (ev) => {
    const k = ev.key;
    const map = { a: "accept", r: "reject", x: "delete", Delete: "delete", Backspace: "delete", p: "polygon",
                  e: "ellipse", f: "fit", s: "save" };
    if (k === "n" || k === "N") { step(ev.shiftKey ? -1 : 1); }
    else if (k === "Tab") { step(ev.shiftKey ? -1 : 1); }
    else if (k === "Enter" && mode === "polygon") { finishPolygon(); }
    else if (k === "Escape") { mode = "select"; drawing = []; ellipseDraft = null; redraw(); }
    else if (/^[1-9]$/.test(k) && classes()[Number(k) - 1]) { classKey(classes()[Number(k) - 1].id); }
    else if (map[k] !== undefined) { act(map[k]); }
    else return;
    ev.preventDefault();
    ev.stopPropagation();
  });

  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = canvas.getBoundingClientRect(), px = ev.clientX - r.left, py = ev.clientY - r.top;
    const [x, y] = toImage(px, py);
    const f = Math.exp(-ev.deltaY * 0.0015);
    view.scale = Math.min(64, Math.max(0.02, view.scale * f));
    view.tx = px - x * view.scale;
    view.ty = py - y * view.scale;
    redraw();
  }, { passive: false });

  canvas.addEventListener("mousedown", (ev) => {
    canvasBox.focus();
    const r = canvas.getBoundingClientRect(), px = ev.clientX - r.left, py = ev.clientY - r.top;
    const [x, y] = toImage(px, py);
    if (mode === "ellipse") {
      if (!ellipseDraft) ellipseDraft = { p1: [x, y], p2: [x, y], dragging: true };
      else if (!ellipseDraft.dragging && ellipseDraft.e) {
        const [cx, cy, major, minor, angle] = ellipseDraft.e;
        edit("draw", null, { kind: "ellipse", ellipse: [cx, cy, major, minor, angle], class_id: drawClass });
        ellipseDraft = null;
      }
      return redraw();
    }
    if (mode === "polygon") { drawing.push([x, y]); return redraw(); }
    drag = { px, py, tx: view.tx, ty: view.ty, moved: false };
  });
  canvas.addEventListener("mousemove", (ev) => {
    const r = canvas.getBoundingClientRect(), px = ev.clientX - r.left, py = ev.clientY - r.top;
    const [x, y] = toImage(px, py);
    if (ellipseDraft) {
      if (ellipseDraft.dragging) ellipseDraft.p2 = [x, y];
      const [x1, y1] = ellipseDraft.p1, [x2, y2] = ellipseDraft.p2;
      const major = Math.hypot(x2 - x1, y2 - y1);
      if (major > 0.5) {
        const angle = (Math.atan2(-(y2 - y1), x2 - x1) * 180) / Math.PI;
        const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2, t = (angle * Math.PI) / 180;
        const minor = ellipseDraft.dragging ? major * 0.6
          : Math.max(1, 2 * Math.abs((x - cx) * Math.sin(t) + (y - cy) * Math.cos(t)));
        ellipseDraft.e = [cx, cy, major, Math.min(minor, major * 4), angle];
      }
      return redraw();
    }
    if (!drag) return;
    if (Math.abs(px - drag.px) + Math.abs(py - drag.py) > 3) drag.moved = true;
    view.tx = drag.tx + (px - drag.px);
    view.ty = drag.ty + (py - drag.py);
    redraw();
  });
  canvas.addEventListener("mouseup", (ev) => {
    if (ellipseDraft && ellipseDraft.dragging) { ellipseDraft.dragging = false; return; }
    if (drag && !drag.moved) {
      const r = canvas.getBoundingClientRect();
      const [x, y] = toImage(ev.clientX - r.left, ev.clientY - r.top);
      selected = hit(x, y);
      redraw();
    }
    drag = null;
  });
  canvas.addEventListener("dblclick", () => { if (mode === "polygon") finishPolygon(); });

  function showStatus() {
    status.textContent = model.get("message");
    status.classList.toggle("tem-label-error", model.get("error"));
  }
  model.on("change:image_png", loadImage);
  model.on("msg:custom", (msg) => {
    if (msg.type === "shapes") { selected = null; setShapes(msg.shapes); }
    if (msg.type === "patch") {
      for (const s of msg.shapes) {
        s._poly = outlineOf(s);
        s._bbox = bboxOf(s._poly);
        if (!byId.has(s.id)) shapes.push(s);
        else shapes[shapes.indexOf(byId.get(s.id))] = s;
        byId.set(s.id, s);
      }
      redraw();
    }
  });
  model.on("change:message", showStatus);
  model.on("change:images", imageOptions);
  model.on("change:image_name", imageOptions);
  model.on("change:classes", classButtons);
  function showScore() {
    scoreInput.value = String(model.get("min_score"));
    const sel = byId.get(selected);
    if (sel && !shown(sel)) selected = null;
    redraw();
  }
  model.on("change:min_score", showScore);

  classButtons();
  imageOptions();
  showScore();
  showStatus();
  loadImage();
  model.send({ type: "hello" }); // Python answers with the shapes of the micrograph shown
  new ResizeObserver(() => redraw()).observe(canvasBox);
}

export default { render };
