// A digit image as a one-channel model's input, as the Python client's prepare-image makes it
// (client/teaclave_client/images.py): a light digit on a dark background, stretched, cropped to
// its ink, its longer side scaled to 20/28 of the frame with Pillow's filters, its centre of mass
// centred; and the .npy files the functions read and write. The same image gives the same tensor
// here as there (the browser test compares the predictions).

const DIGIT_BOX = 20 / 28; // MNIST: a digit's longer side in its frame
const INK = 0.1; // brighter than this (after the stretch) is part of the digit

const roundHalfEven = (x) => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

function median(values) {
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// RGBA pixels (transparency composited on white paper) -> gray in [0, 1], as PIL's "L".
function grayOf(image) {
  const { data, width, height } = image;
  const gray = new Float64Array(width * height);
  for (let i = 0; i < gray.length; i++) {
    const a = data[4 * i + 3] / 255;
    const [r, g, b] = [0, 1, 2].map((c) => data[4 * i + c] * a + 255 * (1 - a));
    gray[i] = Math.floor((r * 19595 + g * 38470 + b * 7471 + 0x8000) / 65536) / 255;
  }
  return { gray, width, height };
}

// A light digit on a dark background, stretched to [0, 1]; the background judged by the border.
function lightOnDark({ gray, width, height }) {
  const edge = Math.max(1, Math.floor(Math.min(width, height) / 20));
  const border = []; // the same pixels as images.py's, in another order: the median is the same
  const at = (y, x) => border.push(gray[y * width + x]);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (y < edge || y >= height - edge) at(y, x);
      if (x < edge) at(y, x);
      if (x >= width - edge) at(y, x);
    }
  }
  let level = median(border);
  let pixels = gray;
  if (level > 0.5) {
    pixels = gray.map((v) => 1 - v);
    level = 1 - level;
  }
  let top = -Infinity;
  for (const v of pixels) top = Math.max(top, v);
  const out = new Float64Array(pixels.length);
  if (top - level >= 1e-3) {
    for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, (pixels[i] - level) / (top - level)));
  }
  return { pixels: out, width, height };
}

// Pillow's separable resampling (BOX when shrinking, BILINEAR otherwise) on float pixels.
function coefficients(inSize, outSize, box) {
  const support0 = box ? 0.5 : 1;
  const filter = box ? (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) : (x) => Math.max(0, 1 - Math.abs(x));
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = support0 * filterScale;
  const rows = [];
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const last = Math.min(Math.trunc(center + support + 0.5), inSize);
    const weights = [];
    let total = 0;
    for (let x = first; x < last; x++) {
      const w = filter((x - center + 0.5) / filterScale);
      weights.push(w);
      total += w;
    }
    rows.push({ first, weights: weights.map((w) => (total ? w / total : 0)) });
  }
  return rows;
}

function resize({ pixels, width, height }, outW, outH) {
  const box = outW < width || outH < height;
  const across = coefficients(width, outW, box);
  const wide = new Float32Array(outW * height);
  for (let y = 0; y < height; y++) {
    across.forEach(({ first, weights }, x) => {
      let sum = 0;
      weights.forEach((w, k) => (sum += w * pixels[y * width + first + k]));
      wide[y * outW + x] = sum;
    });
  }
  const down = coefficients(height, outH, box);
  const out = new Float64Array(outW * outH);
  down.forEach(({ first, weights }, y) => {
    for (let x = 0; x < outW; x++) {
      let sum = 0;
      weights.forEach((w, k) => (sum += w * wide[(first + k) * outW + x]));
      out[y * outW + x] = Math.min(1, Math.max(0, Math.fround(sum)));
    }
  });
  return { pixels: out, width: outW, height: outH };
}

// MNIST's framing: crop to the ink, longer side to 20/28 of the frame, centre of mass centred.
function fitDigit({ pixels, width, height }, outH, outW) {
  let [top, bottom, left, right] = [Infinity, -1, Infinity, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (pixels[y * width + x] > INK) {
        [top, bottom] = [Math.min(top, y), Math.max(bottom, y)];
        [left, right] = [Math.min(left, x), Math.max(right, x)];
      }
    }
  }
  const frame = new Float64Array(outH * outW);
  if (bottom < 0) return frame;
  const [ch, cw] = [bottom - top + 1, right - left + 1];
  const crop = new Float64Array(ch * cw);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) crop[y * cw + x] = pixels[(top + y) * width + left + x];
  const scale = (DIGIT_BOX * Math.min(outH, outW)) / Math.max(ch, cw);
  const [h, w] = [ch, cw].map((n) => Math.max(1, roundHalfEven(n * scale)));
  const digit = resize({ pixels: crop, width: cw, height: ch }, w, h).pixels;
  let [mass, my, mx] = [0, 0, 0];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = digit[y * w + x];
      [mass, my, mx] = [mass + v, my + y * v, mx + x * v];
    }
  }
  const clamp = (v, hi) => Math.min(Math.max(v, 0), hi);
  const y0 = clamp(roundHalfEven((outH - 1) / 2 - my / mass), outH - h);
  const x0 = clamp(roundHalfEven((outW - 1) / 2 - mx / mass), outW - w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) frame[(y0 + y) * outW + x0 + x] = digit[y * w + x];
  return frame;
}

// An ImageData -> the model's one-channel tensor in its pixel range (null: no ink at all).
export function prepareImage(image, height, width, range = [0, 1]) {
  const light = lightOnDark(grayOf(image));
  const pixels =
    light.width === width && light.height === height ? light.pixels : fitDigit(light, height, width);
  if (!pixels.some((v) => v > 0)) return null;
  const [low, high] = range;
  return Float32Array.from(pixels, (v) => low + v * (high - low));
}

// -- .npy, what the functions read and write ----------------------------------------------------

export function npyBytes(tensor, shape) {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  const unpadded = 10 + dict.length + 1;
  const header = dict + " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  const out = new Uint8Array(10 + header.length + tensor.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0); // \x93NUMPY v1.0
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(tensor.buffer, tensor.byteOffset, tensor.byteLength), 10 + header.length);
  return out;
}

export function parseNpy(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = String.fromCharCode(...bytes.subarray(1, 6));
  if (bytes[0] !== 0x93 || magic !== "NUMPY") throw new Error("the output is not a .npy file");
  const [headerLen, start] = bytes[6] === 1 ? [view.getUint16(8, true), 10] : [view.getUint32(8, true), 12];
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen));
  if (!header.includes("'<f4'")) throw new Error(`the output is not float32: ${header.trim()}`);
  const body = bytes.slice(start + headerLen);
  return new Float32Array(body.buffer, 0, body.byteLength / 4);
}
