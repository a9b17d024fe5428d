/* The engine in the reader's browser (book chapter 26). Inlined into the page by
 * bitnetlib/book/engine_page.py after `window.BN_DEMO_DATA` (the wasm module, the
 * models, 1,000 MNIST test images, all base64). No network: everything is in the page.
 *
 * Input path (drawn digit or test image) -> 256 float32 pixels, normalised like the
 * training data -> wasm: int8 quantization (the host's input_codes) and the engine's
 * bn_run_network with a trace -> prediction, logits, per-layer activations.
 * Exposed as window.bnDemo (runImage, testImage, mnist28, resize16, ...).
 */
(function () {
  "use strict";
  const D = window.BN_DEMO_DATA, SIDE = 16, MEAN = 0.1307, STD = 0.3081;
  const $ = (id) => document.getElementById(id);

  function b64bytes(s) {
    const bin = atob(s), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  async function gunzip(s) {        // the browser's own gzip (no library, no fetch)
    const stream = new Blob([b64bytes(s)]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // ------------------------------------------------------------ the wasm engine
  let E = null, images = null;
  function view(T, ptr, n) { return new T(E.memory.buffer, ptr, n); }

  function runImage(m, pixels) {
    /* pixels: 256 floats (normalised 16x16 image) -> {pred, logits, codes, trace} */
    const n = E.bn_wasm_info(m, 1);
    if (pixels.length !== n) throw new Error(`runImage: expected ${n} pixels, got ${pixels.length}`);
    view(Float32Array, E.bn_wasm_input(), n).set(pixels);
    const pred = E.bn_wasm_run(m);
    if (pred < 0) throw new Error(`bn_wasm_run returned status ${pred}`);
    const nc = E.bn_wasm_info(m, 2), nt = E.bn_wasm_info(m, 3);
    return {pred, logits: Array.from(view(Int32Array, E.bn_wasm_logits(), nc)),
            codes: Array.from(view(Int8Array, E.bn_wasm_codes(), n)),
            trace: Array.from(view(Int32Array, E.bn_wasm_trace(), nt))};
  }
  function activations(m, start, n) {   // the engine's ShiftNorm/ReLU of a trace segment
    const st = E.bn_wasm_acts_of(start, n);
    if (st !== 0) throw new Error(`bn_wasm_acts_of returned status ${st}`);
    return Array.from(view(Int8Array, E.bn_wasm_acts(), n));
  }
  function testImage(i) {
    const k = ((i % images.n) + images.n) % images.n;
    return {index: k, label: images.labels[k], pixels: images.x16.slice(k * 256, k * 256 + 256),
            raw28: images.raw28.slice(k * 784, k * 784 + 784)};
  }

  // ------------------------------------------------------------ preprocessing
  function areaWeights(n, lo, len, out) {
    /* box filter: output pixel o covers source [lo + o*len/out, lo + (o+1)*len/out) */
    const w = [];
    for (let o = 0; o < out; o++) {
      const a = lo + o * len / out, b = lo + (o + 1) * len / out, taps = [];
      for (let j = Math.floor(a); j < Math.ceil(b) && j < n; j++) {
        const cover = Math.min(b, j + 1) - Math.max(a, j);
        if (cover > 0) taps.push([j, cover / (b - a)]);
      }
      w.push(taps);
    }
    return w;
  }
  function aaWeights(n, out) {
    /* torch's F.interpolate(bilinear, antialias=True, align_corners=False), like PIL:
     * a triangle filter stretched by the scale factor, normalised per output pixel */
    const scale = n / out, support = Math.max(scale, 1), w = [];
    for (let o = 0; o < out; o++) {
      const c = scale * (o + 0.5);
      const lo = Math.max(Math.floor(c - support + 0.5), 0), hi = Math.min(Math.floor(c + support + 0.5), n);
      let taps = [], sum = 0;
      for (let j = lo; j < hi; j++) {
        const t = Math.max(0, 1 - Math.abs((j - c + 0.5) / support));
        taps.push([j, t]); sum += t;
      }
      w.push(taps.map(([j, t]) => [j, t / sum]));
    }
    return w;
  }
  function separable(src, sw, wx, wy) {  // rows with wx, then columns with wy
    const ow = wx.length, oh = wy.length, sh = src.length / sw, tmp = new Float64Array(ow * sh);
    for (let y = 0; y < sh; y++)
      for (let x = 0; x < ow; x++) {
        let s = 0;
        for (const [j, t] of wx[x]) s += t * src[y * sw + j];
        tmp[y * ow + x] = s;
      }
    const out = new Float64Array(ow * oh);
    for (let y = 0; y < oh; y++)
      for (let x = 0; x < ow; x++) {
        let s = 0;
        for (const [j, t] of wy[y]) s += t * tmp[j * ow + x];
        out[y * ow + x] = s;
      }
    return out;
  }
  function resize16(img28) {
    /* 28x28 in [0, 1] -> 256 normalised floats, as the training data (data.py) */
    const w = aaWeights(28, SIDE), v = separable(img28, 28, w, w);
    return Float32Array.from(v, (p) => (p - MEAN) / STD);
  }
  function mnist28(gray, w, h) {
    /* MNIST's own recipe: the stroke's bounding box scaled (area average, aspect kept)
     * into a 20x20 box, placed in 28x28 with its centre of mass at the centre (whole
     * pixels, kept inside the frame). null for an empty canvas. */
    let x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        if (gray[y * w + x] > 0) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    if (x1 < 0) return null;
    const bw = x1 - x0 + 1, bh = y1 - y0 + 1, s = 20 / Math.max(bw, bh);
    const tw = Math.max(1, Math.round(bw * s)), th = Math.max(1, Math.round(bh * s));
    const crop = new Float64Array(bw * bh);
    for (let y = 0; y < bh; y++) for (let x = 0; x < bw; x++) crop[y * bw + x] = gray[(y0 + y) * w + x0 + x];
    const box = separable(crop, bw, areaWeights(bw, 0, bw, tw), areaWeights(bh, 0, bh, th));
    let m = 0, mx = 0, my = 0;
    for (let y = 0; y < th; y++) for (let x = 0; x < tw; x++) {
      const v = box[y * tw + x]; m += v; mx += v * (x + 0.5); my += v * (y + 0.5);
    }
    const clamp = (v, hi) => Math.min(Math.max(v, 0), hi);
    const ox = clamp(Math.round(14 - mx / m), 28 - tw), oy = clamp(Math.round(14 - my / m), 28 - th);
    const out = new Float64Array(784);
    for (let y = 0; y < th; y++) for (let x = 0; x < tw; x++) out[(oy + y) * 28 + ox + x] = Math.min(1, box[y * tw + x]);
    return out;
  }

  // ------------------------------------------------------------ drawing
  function setupCanvas(cv, onStroke) {
    const ctx = cv.getContext("2d");
    let down = false, last = null;
    const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, cv.width, cv.height); };
    const pos = (e) => { const r = cv.getBoundingClientRect();
      return [(e.clientX - r.left) * cv.width / r.width, (e.clientY - r.top) * cv.height / r.height]; };
    const line = (a, b) => { ctx.strokeStyle = "#fff"; ctx.lineWidth = cv.width / 12; ctx.lineCap = "round";
      ctx.lineJoin = "round"; ctx.beginPath(); ctx.moveTo(...a); ctx.lineTo(...b); ctx.stroke(); };
    cv.addEventListener("pointerdown", (e) => { down = true; last = pos(e); line(last, last);
      if (cv.setPointerCapture && e.pointerId !== undefined) { try { cv.setPointerCapture(e.pointerId); } catch (_) {} }
      e.preventDefault(); });
    cv.addEventListener("pointermove", (e) => { if (!down) return; const p = pos(e); line(last, p); last = p; e.preventDefault(); });
    const end = () => { if (down) { down = false; onStroke(); } };
    cv.addEventListener("pointerup", end); cv.addEventListener("pointercancel", end);
    cv.style.touchAction = "none";
    clear();
    return {clear, ctx};
  }
  function canvasGray(cv) {
    const d = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data;
    return Float64Array.from({length: cv.width * cv.height}, (_, i) => d[4 * i] / 255);
  }

  // ------------------------------------------------------------ pictures
  function heat(cv, vals, cols, lo, hi) {
    const rows = Math.ceil(vals.length / cols), ctx = cv.getContext("2d");
    const cw = cv.width / cols, ch = cv.height / rows;
    ctx.fillStyle = "#eee"; ctx.fillRect(0, 0, cv.width, cv.height);
    vals.forEach((v, i) => {
      const t = Math.round(255 * Math.min(1, Math.max(0, (v - lo) / (hi - lo))));
      ctx.fillStyle = `rgb(${t},${t},${t})`;
      ctx.fillRect((i % cols) * cw, Math.floor(i / cols) * ch, Math.ceil(cw), Math.ceil(ch));
    });
  }
  function bars(svg, logits, pred) {
    const w = 300, h = 150, bw = w / logits.length, amax = Math.max(1, ...logits.map(Math.abs));
    let s = `<line x1="0" y1="${h / 2}" x2="${w}" y2="${h / 2}" stroke="#888"/>`;
    logits.forEach((v, i) => {
      const bh = (h / 2 - 14) * Math.abs(v) / amax, y = v >= 0 ? h / 2 - bh : h / 2;
      s += `<rect x="${i * bw + 3}" y="${y}" width="${bw - 6}" height="${bh}" fill="${i === pred ? "#d62728" : "#1f77b4"}"><title>${i}: ${v}</title></rect>`;
      s += `<text x="${i * bw + bw / 2}" y="${h - 1}" font-size="11" text-anchor="middle">${i}</text>`;
    });
    svg.innerHTML = s;
  }

  // ------------------------------------------------------------ the page
  let current = null;
  function show(pixels, source) {
    const m = Number($("bn-model").value), M = D.models[m], r = runImage(m, pixels);
    current = {model: m, source, pixels, ...r};   // pixels: a model switch reruns them
    heat($("bn-input"), r.codes, SIDE, -127, 127);
    bars($("bn-logits"), r.logits, r.pred);
    $("bn-pred").textContent = r.pred;
    $("bn-source").textContent = source;
    $("bn-logit-text").textContent = "logits: " + r.logits.join(", ");
    const box = $("bn-layers");
    box.innerHTML = "";
    M.segments.slice(0, -1).forEach((seg) => {
      const acts = activations(m, seg.start, seg.n), fig = document.createElement("figure");
      const cv = document.createElement("canvas"), cols = seg.cols;
      const px = Math.max(6, Math.floor(120 / cols));   // about 120 px wide
      cv.width = px * cols; cv.height = px * Math.ceil(seg.n / cols);
      heat(cv, acts, cols, 0, 127);
      fig.appendChild(cv);
      fig.insertAdjacentHTML("beforeend", `<figcaption>${seg.label}</figcaption>`);
      box.appendChild(fig);
    });
    return current;
  }
  function fromCanvas() {
    const img28 = mnist28(canvasGray($("bn-draw")), $("bn-draw").width, $("bn-draw").height);
    return img28 ? show(resize16(img28), "your drawing") : null;
  }
  function randomImage() {
    const t = testImage(Math.floor(Math.random() * images.n)), ctx = $("bn-draw").getContext("2d");
    const small = new ImageData(28, 28);
    t.raw28.forEach((v, i) => { small.data.set([v, v, v, 255], 4 * i); });
    createImageBitmap(small).then((bmp) => { ctx.imageSmoothingEnabled = false;
      ctx.drawImage(bmp, 0, 0, $("bn-draw").width, $("bn-draw").height); });
    return show(t.pixels, `MNIST test image ${t.index} (label ${t.label})`);
  }
  function selfCheck() {
    /* every embedded test image through every model, against the host engine's output */
    return D.models.map((M, m) => {
      const ref = M.host, nc = ref.n_classes;
      let diff = 0, correct = 0;
      for (let i = 0; i < images.n; i++) {
        const r = runImage(m, images.x16.subarray(i * 256, i * 256 + 256));
        const same = r.pred === ref.preds[i] && r.logits.every((v, k) => v === ref.logits[i * nc + k]);
        diff += same ? 0 : 1; correct += r.pred === images.labels[i] ? 1 : 0;
      }
      return {model: M.name, images: images.n, differences: diff, correct};
    });
  }
  function showModelInfo() {
    const M = D.models[Number($("bn-model").value)];
    $("bn-model-info").textContent = `${M.name}: ${M.config}, model_id 0x${M.model_id_hex}, `
      + `header ${M.header}; on the CH32V003: ${M.cycles}`;
  }

  async function start() {
    const {instance} = await WebAssembly.instantiate(b64bytes(D.wasm), {});
    E = instance.exports;
    const x16 = await gunzip(D.images.x16), raw = await gunzip(D.images.raw28);
    images = {n: D.images.n, labels: D.images.labels, raw28: raw,
              x16: new Float32Array(x16.buffer, 0, D.images.n * 256)};
    for (const M of D.models) {
      const lg = await gunzip(M.host.logits);
      M.host.logits = new Int32Array(lg.buffer, 0, lg.length / 4);
      if (E.bn_wasm_info(M.index, 0) >>> 0 !== M.model_id) throw new Error(`model ${M.name}: wasm model_id differs`);
    }
    const sel = $("bn-model");
    D.models.forEach((M, m) => sel.add(new Option(M.name, m)));
    const pad = setupCanvas($("bn-draw"), fromCanvas);
    $("bn-clear").onclick = () => pad.clear();
    $("bn-random").onclick = randomImage;
    sel.onchange = () => {       // the same input through the other model
      showModelInfo();
      if (current) show(current.pixels, current.source);
    };
    showModelInfo();
    const checks = selfCheck();
    $("bn-check").textContent = checks.map((c) => `${c.model}: ${c.differences} of ${c.images} test images `
      + `differ from the host engine (prediction or any logit); ${c.correct} correct`).join(". ") + ".";
    randomImage();
    window.bnDemo.checks = checks;
    return checks;
  }

  window.bnDemo = {runImage, testImage, mnist28, resize16, activations, fromCanvas, randomImage,
                   selfCheck, get models() { return D.models.map((M) => M.name); },
                   get current() { return current; }};
  window.bnDemo.ready = start().catch((e) => {
    $("bn-check").textContent = "The engine did not start in this browser: " + e;
    throw e;
  });
})();
