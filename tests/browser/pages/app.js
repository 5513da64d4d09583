// A third-party frontend in miniature, served from its own origin: it reaches the API only through fetch with a
// token (CORS) and <img> tags with the signed URLs from the sample payloads.
// Parameters come in the URL's fragment: api (the API's base URL), username, password, dataset, class, bins.
const params = new URLSearchParams(location.hash.slice(1));
const api = params.get("api").replace(/\/$/, "") + "/";
const statusLine = document.getElementById("status");
let token = null;

async function call(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Token ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(new URL(path, api), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

function loaded(img) {
  return new Promise((resolve) => {
    if (img.complete) resolve(img);
    img.addEventListener("load", () => resolve(img));
    img.addEventListener("error", () => resolve(img));
  });
}

async function showThumbnails(samples) {
  const grid = document.getElementById("grid");
  const images = samples.map((sample) => {
    const img = document.createElement("img");
    img.alt = sample.external_id;
    img.dataset.sample = sample.id;
    img.src = new URL(sample.thumbnail_url, api).href; // relative to the API: resolve against its base
    grid.append(img);
    return img;
  });
  await Promise.all(images.map(loaded));
}

function drawHistogram({ edges, counts }) {
  const svg = document.getElementById("histogram");
  const width = Number(svg.getAttribute("width"));
  const height = Number(svg.getAttribute("height"));
  const bins = edges.length - 1;
  const totals = counts.present.map((present, i) => present + counts.absent[i] + counts.unlabeled[i]);
  const tallest = Math.max(1, ...totals);
  const barWidth = width / bins;
  totals.forEach((total, i) => {
    const bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    const barHeight = (total / tallest) * (height - 10);
    bar.setAttribute("class", counts.present[i] > 0 ? "bar present" : "bar");
    bar.setAttribute("x", String(i * barWidth + 1));
    bar.setAttribute("width", String(Math.max(1, barWidth - 2)));
    bar.setAttribute("y", String(height - barHeight));
    bar.setAttribute("height", String(barHeight));
    bar.dataset.count = String(total);
    svg.append(bar);
  });
}

async function main() {
  ({ token } = await call("auth/token/", {
    method: "POST", body: { username: params.get("username"), password: params.get("password") },
  }));
  const dataset = params.get("dataset");
  statusLine.textContent = "Listing samples…";
  const page = await call(`datasets/${dataset}/samples/?limit=100`);
  await showThumbnails(page.results);
  statusLine.textContent = "Running an LF preview…";
  const preview = await call(`datasets/${dataset}/lfs/preview/`, {
    method: "POST",
    body: {
      label_class: params.get("class"), type: "pattern", bins: Number(params.get("bins")),
      config: { field: "caption", builder: "keyword", words: [params.get("class")] },
    },
  });
  drawHistogram(preview.histogram);
  statusLine.textContent = `${page.count} samples; preview of ${preview.population} scores in ${preview.seconds} s.`;
  document.body.dataset.state = "done";
}

main().catch((error) => {
  statusLine.textContent = String(error);
  document.body.dataset.state = "error";
});
