// A small inline SVG bar chart of attempts per hour: succeeded and failed stacked, drawn
// with DOM calls (no library, no HTML strings).

const SVG = "http://www.w3.org/2000/svg";

function node(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
}

/** An SVG chart of `buckets` ({start_time, succeeded, failed}, oldest first). */
export function hourlyChart(buckets, label) {
  const width = 144;
  const height = 32;
  const barWidth = width / Math.max(buckets.length, 1);
  const most = Math.max(1, ...buckets.map((b) => b.succeeded + b.failed));
  const svg = node("svg", {
    viewBox: `0 0 ${width} ${height}`, width, height, role: "img", class: "chart",
  });
  const title = node("title", {});
  title.textContent = label;
  svg.append(title);
  svg.append(node("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" }));
  buckets.forEach((bucket, i) => {
    const x = i * barWidth + 0.5;
    const ok = (bucket.succeeded / most) * (height - 2);
    const bad = (bucket.failed / most) * (height - 2);
    if (ok > 0) {
      svg.append(node("rect", { x, y: height - 1 - ok, width: barWidth - 1, height: ok, class: "ok" }));
    }
    if (bad > 0) {
      svg.append(node("rect", {
        x, y: height - 1 - ok - bad, width: barWidth - 1, height: bad, class: "bad",
      }));
    }
  });
  return svg;
}
