// Draws the bench's JSON results as an SVG chart, with no dependency: one
// panel per framework and scenario; in each, per Node version, a bar per
// variant at its median req/s ratio to the bare server of the same round, a
// whisker over the rounds' range (min to max), and a line at 1.00 (as fast
// as bare). `node bench/chart.mjs results.json results.svg` redraws a file.
import { readFileSync, writeFileSync } from 'node:fs'
import { median } from './stats.mjs'

const colours = [
  ['hand-rolled', '#8c8c8c'],
  ['request-locals', '#1f6fd1'],
  ['request-context', '#e07b00'],
  ['http-context', '#e07b00'],
  ['cls-rtracer', '#2e9e44']
]

function colourOf (name) {
  return colours.find(([part]) => name.includes(part))?.[1] ?? '#555'
}

function escape (text) {
  return String(text).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
}

/** The SVG text for `results` (the object bench/run.mjs writes as JSON). */
export function renderChart (results) {
  const versions = Object.keys(results.http)
  const scenarios = results.scenarios.filter((s) => versions.some((v) => results.http[v][s.name] !== undefined))
  const frameworks = [...new Set(results.variants.map((v) => v.framework))]
    .filter((f) => versions.some((version) => scenarios.some((s) => results.variants.some((v) => v.framework === f && results.http[version][s.name]?.[v.name] !== undefined))))
  const shown = (framework) => results.variants.filter((v) => v.framework === framework && !v.name.endsWith('-bare'))
  const all = versions.flatMap((version) => scenarios.flatMap((s) => Object.values(results.http[version][s.name] ?? {}).flatMap((m) => m.ratio)))
  const top = Math.min(2, Math.max(1.2, Math.ceil(Math.max(...all, 1) * 4) / 4))
  const bar = 9
  const gap = 3
  const groupGap = 10
  const labelWidth = 70
  const plotWidth = 250
  const panelWidth = labelWidth + plotWidth + 20
  const panelHeight = (framework) => 40 + versions.length * (shown(framework).length * (bar + gap) + groupGap) + 20
  const x = (ratio) => labelWidth + plotWidth * Math.min(ratio, top) / top
  const out = []
  let y = 60
  for (const framework of frameworks) {
    const height = panelHeight(framework)
    scenarios.forEach((scenario, column) => {
      const left = 10 + column * panelWidth
      out.push(`<g transform="translate(${left},${y})">`)
      out.push(`<text x="${labelWidth}" y="14" class="title">${escape(framework)} · ${escape(scenario.title)}</text>`)
      for (let tick = 0; tick <= top + 1e-9; tick += 0.25) {
        out.push(`<line x1="${x(tick)}" x2="${x(tick)}" y1="24" y2="${height - 18}" class="${Math.abs(tick - 1) < 1e-9 ? 'one' : 'grid'}"/>`)
        out.push(`<text x="${x(tick)}" y="${height - 6}" class="tick">${tick.toFixed(2)}</text>`)
      }
      let row = 32
      for (const version of versions) {
        out.push(`<text x="${labelWidth - 6}" y="${row + (shown(framework).length * (bar + gap)) / 2 + 3}" class="node">${escape(version)}</text>`)
        for (const variant of shown(framework)) {
          const m = results.http[version][scenario.name]?.[variant.name]
          if (m !== undefined && m.ratio.length > 0) {
            const mid = median(m.ratio)
            out.push(`<rect x="${labelWidth}" y="${row}" width="${(x(mid) - labelWidth).toFixed(1)}" height="${bar}" fill="${colourOf(variant.name)}"><title>${escape(`${variant.label}, ${version}: ${mid.toFixed(3)} (${Math.min(...m.ratio).toFixed(2)}–${Math.max(...m.ratio).toFixed(2)}, ${m.ratio.length} rounds)`)}</title></rect>`)
            out.push(`<line x1="${x(Math.min(...m.ratio)).toFixed(1)}" x2="${x(Math.max(...m.ratio)).toFixed(1)}" y1="${row + bar / 2}" y2="${row + bar / 2}" class="range"/>`)
          }
          row += bar + gap
        }
        row += groupGap
      }
      out.push('</g>')
    })
    y += height + 10
  }
  const legend = results.variants.filter((v) => !v.name.endsWith('-bare'))
    .map((v) => [v.label, colourOf(v.name)])
    .filter(([label], i, list) => list.findIndex(([other]) => other === label) === i)
    .map(([label, colour], i) => `<g transform="translate(${10 + i * 200},34)"><rect width="10" height="10" fill="${colour}"/><text x="14" y="9" class="legend">${escape(label)}</text></g>`)
  const width = 20 + scenarios.length * panelWidth
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" viewBox="0 0 ${width} ${y + 10}" font-family="sans-serif">`,
    '<style>.title{font-size:12px;font-weight:bold}.tick{font-size:9px;text-anchor:middle;fill:#555}.node{font-size:10px;text-anchor:end}.legend{font-size:11px}.grid{stroke:#e4e4e4}.one{stroke:#000;stroke-dasharray:3 2}.range{stroke:#000;stroke-width:1}</style>',
    '<rect width="100%" height="100%" fill="#fff"/>',
    `<text x="10" y="20" font-size="14">${escape(`req/s ratio to the bare server (median of ${results.rounds} interleaved rounds, bar; range, line) · ${results.started.slice(0, 16).replace('T', ' ')} UTC`)}</text>`,
    ...legend,
    ...out,
    '</svg>',
    ''
  ].join('\n')
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const [from = 'bench/results.json', to = 'bench/results.svg'] = process.argv.slice(2)
  writeFileSync(to, renderChart(JSON.parse(readFileSync(from, 'utf8'))))
}
