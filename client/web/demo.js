// The /demo page: draw or drop a digit, run a digit model on it in this browser (teaclave-host.js)
// or on the platform (teaclave-platform.js), show the prediction, the ten scores and the latency.

import { DTYPE, STATUS_MEANINGS, WEIGHTS_ID } from "./teaclave-constants.js";
import { loadFunction, runFunction } from "./teaclave-host.js";
import { Platform } from "./teaclave-platform.js";
import { npyBytes, parseNpy, prepareImage } from "./digit-image.js";

const $ = (id) => document.getElementById(id);
const platform = new Platform("");
const PAD_INK = 22; // brush width on the 280-pixel pad: about a pen stroke of an MNIST digit

const state = {
  functions: new Map(), // id -> function as listed
  manifests: new Map(), // id -> manifest
  compiled: new Map(), // id -> {module, weights} for in-browser runs
  tensor: null, // Float32Array of the prepared image, or null
  drawn: false,
};
window.teaclaveDemo = state; // for tests and the curious: the last tensor and result

// -- the drawing pad ----------------------------------------------------------------------------

const pad = $("pad");
const ink = pad.getContext("2d", { willReadFrequently: true });

function clearPad() {
  $("image-file").value = "";
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
  state.tensor = null;
  state.drawn = false;
  showPreview(null);
  updateButtons();
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [((event.clientX - box.left) * pad.width) / box.width, ((event.clientY - box.top) * pad.height) / box.height];
}

let stroke = null;
pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  if (!state.drawn) clearPad();
  stroke = padPoint(event);
  Object.assign(ink, { strokeStyle: "#fff", fillStyle: "#fff", lineWidth: PAD_INK, lineCap: "round", lineJoin: "round" });
  ink.beginPath();
  ink.arc(stroke[0], stroke[1], PAD_INK / 2, 0, 2 * Math.PI);
  ink.fill();
});
pad.addEventListener("pointermove", (event) => {
  if (!stroke) return;
  const next = padPoint(event);
  ink.beginPath();
  ink.moveTo(...stroke);
  ink.lineTo(...next);
  ink.stroke();
  stroke = next;
});
const endStroke = () => {
  if (!stroke) return;
  stroke = null;
  state.drawn = true;
  usePad();
};
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function usePad() {
  const manifest = selectedManifest();
  const [h, w] = frameOf(manifest);
  state.tensor = prepareImage(ink.getImageData(0, 0, pad.width, pad.height), h, w, rangeOf(manifest));
  showPreview(state.tensor, h, w);
  updateButtons();
}

async function useImageFile(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return status(`Cannot read ${file.name} as an image.`, true);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  const manifest = selectedManifest();
  const [h, w] = frameOf(manifest);
  // at its own size, as the Python client reads it: a 28x28 digit is taken as it is
  state.tensor = prepareImage(context.getImageData(0, 0, bitmap.width, bitmap.height), h, w, rangeOf(manifest));
  clearPadTo(bitmap);
  showPreview(state.tensor, h, w);
  updateButtons();
}

function clearPadTo(bitmap) {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
  ink.imageSmoothingEnabled = bitmap.width > pad.width;
  const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
  const [w, h] = [bitmap.width * scale, bitmap.height * scale];
  ink.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
  state.drawn = false; // the next stroke starts a fresh drawing
}

function showPreview(tensor, h = 28, w = 28) {
  const preview = $("preview");
  [preview.width, preview.height] = [w, h];
  const context = preview.getContext("2d");
  const image = context.createImageData(w, h);
  const [low, high] = rangeOf(selectedManifest());
  for (let i = 0; i < w * h; i++) {
    const v = tensor ? Math.round((255 * (tensor[i] - low)) / (high - low)) : 0;
    image.data.set([v, v, v, 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
}

pad.addEventListener("dragover", (event) => {
  event.preventDefault();
  pad.classList.add("dragging");
});
pad.addEventListener("dragleave", () => pad.classList.remove("dragging"));
pad.addEventListener("drop", (event) => {
  event.preventDefault();
  pad.classList.remove("dragging");
  const file = event.dataTransfer?.files?.[0];
  if (file) useImageFile(file);
});
$("image-file").addEventListener("change", (event) => {
  const file = event.target.files?.[0];
  if (file) useImageFile(file);
});
$("clear").addEventListener("click", clearPad);
pad.addEventListener("keydown", (event) => {
  if (event.key === "Delete" || event.key === "Backspace" || event.key === "Escape") clearPad();
});

// -- functions and runs -------------------------------------------------------------------------

function imageInput(manifest) {
  return (manifest?.inputs ?? []).find((i) => [3, 4].includes(i.shape?.length));
}
function frameOf(manifest) {
  const shape = imageInput(manifest)?.shape ?? [1, 1, 28, 28];
  return shape.length === 4 && shape[3] === 1 ? [shape[1], shape[2]] : shape.slice(-2);
}
const rangeOf = (manifest) => imageInput(manifest)?.image?.range ?? [0, 1];
const selectedManifest = () => state.manifests.get($("function").value);
const mode = () => document.querySelector("input[name=mode]:checked").value;

function isDigitModel(manifest) {
  const input = imageInput(manifest);
  if (!input || input.dtype !== DTYPE.FLOAT32 || manifest.outputs?.length !== 1) return false;
  const s = input.shape;
  return s[0] === 1 && (s.length === 3 || s[1] === 1 || s[3] === 1);
}

function status(message, error = false) {
  const line = $("run-status");
  line.textContent = message;
  line.classList.toggle("error", error);
}

function updateButtons() {
  $("classify").disabled = !(platform.user && $("function").value && state.tensor);
}

async function listFunctions() {
  const select = $("function");
  select.replaceChildren();
  state.functions.clear();
  for (const fn of await platform.functions()) {
    if (fn.has_manifest === false) continue; // a Teaclave-ABI function: no shapes, no digits
    const manifest = await platform.manifest(fn.id);
    if (!isDigitModel(manifest)) continue;
    state.functions.set(fn.id, fn);
    state.manifests.set(fn.id, manifest);
    const where = fn.browser ? "browser or platform" : "platform only";
    select.append(new Option(`${fn.name} (${where})`, fn.id));
  }
  select.disabled = state.functions.size === 0;
  if (select.disabled) select.append(new Option("No digit model is shared with you", ""));
  updateButtons();
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const line = $("account-status");
  try {
    const user = await platform.login($("username").value, $("password").value);
    $("password").value = "";
    line.textContent = `Signed in as ${user.username}.`;
    line.classList.remove("error");
    await listFunctions();
  } catch (err) {
    line.textContent = `Sign-in failed: ${err.message}`;
    line.classList.add("error");
  }
});
$("function").addEventListener("change", () => {
  if (state.drawn) usePad();
  updateButtons();
});

async function inBrowser(fn, manifest, input) {
  let ready = state.compiled.get(fn.id);
  if (!ready) {
    status("Fetching the function…");
    const bundle = await platform.browserBundle(fn.id);
    ready = { module: await loadFunction(bundle.wasm), weights: bundle.weights };
    state.compiled.set(fn.id, ready);
  }
  const slot = imageInput(manifest).id;
  const out = manifest.outputs[0].id;
  const inputs = { [slot]: input };
  if (ready.weights) inputs[WEIGHTS_ID] = ready.weights; // decrypted by the host as it opens them
  const args = Object.fromEntries(fn.arguments.map((a) => [a.name, a.default ?? ""]));
  status("Running in this browser…");
  const result = await runFunction(ready.module, { arguments: args, inputs, outputs: [out] });
  if (!result.ok) throw new Error(`the function failed: ${result.message}`);
  if (result.returnValue < 0) {
    const meaning = STATUS_MEANINGS[result.returnValue];
    throw new Error(`the function returned ${result.returnValue}${meaning ? `: ${meaning}` : ""}`);
  }
  return { scores: parseNpy(result.outputs[out]), receipt: null };
}

async function onPlatform(fn, manifest, input) {
  const slot = imageInput(manifest).id;
  const out = manifest.outputs[0].id;
  const run = await platform.runTask(fn, { [slot]: input }, [out], {
    onState: (s) => status(`On the platform: ${s}…`),
  });
  return { scores: parseNpy(run.outputs[out]), receipt: run.receipt };
}

function softmax(scores) {
  const sum = scores.reduce((a, b) => a + b, 0);
  if (scores.every((v) => v >= 0) && Math.abs(sum - 1) < 1e-3) return Array.from(scores);
  const top = Math.max(...scores);
  const exp = Array.from(scores, (v) => Math.exp(v - top));
  const total = exp.reduce((a, b) => a + b, 0);
  return exp.map((v) => v / total);
}

function showResult({ scores, receipt }, where, ms) {
  const probabilities = softmax(scores);
  const best = probabilities.indexOf(Math.max(...probabilities));
  $("prediction").textContent = String(best);
  $("where").textContent = where === "browser" ? "in this browser" : "on the platform";
  $("latency").textContent = `${ms.toFixed(1)} ms`;
  $("receipt").textContent = receipt
    ? `verified: signed by the platform for task ${receipt.task_id.slice(0, 8)}…`
    : "none (nothing left this page)";
  $("bars").replaceChildren(
    ...probabilities.map((p, digit) => {
      const row = document.createElement("li");
      row.className = digit === best ? "top" : "";
      row.setAttribute("aria-label", `${digit}: ${(100 * p).toFixed(1)} percent`);
      row.innerHTML = `<span>${digit}</span><span class="track"><span class="fill"></span></span><span class="value">${(100 * p).toFixed(1)}%</span>`;
      row.querySelector(".fill").style.width = `${(100 * p).toFixed(2)}%`;
      return row;
    }),
  );
  state.result = { prediction: best, scores: Array.from(scores), where, ms, receipt };
}

$("classify").addEventListener("click", async () => {
  const fn = state.functions.get($("function").value);
  const manifest = state.manifests.get(fn.id);
  const input = npyBytes(state.tensor, imageInput(manifest).shape);
  const where = mode();
  $("classify").disabled = true;
  const start = performance.now();
  try {
    const run = where === "browser" ? await inBrowser(fn, manifest, input) : await onPlatform(fn, manifest, input);
    showResult(run, where, performance.now() - start);
    status("Done.");
  } catch (err) {
    state.result = { error: err.message };
    status(err.status === 403 ? `Not allowed: ${err.message}` : `Failed: ${err.message}`, true);
  } finally {
    updateButtons();
  }
});

clearPad();
