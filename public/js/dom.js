// Tiny DOM helpers: the page builds its elements with these instead of innerHTML,
// so text from the service (messages, job output) is never parsed as markup.

/**
 * Creates an element. `attrs`: `class`, `text`, `dataset`, `on<event>`
 * handlers, anything else as an attribute (`true` → empty, null/false → left out).
 * @param {string} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...(Node|string|number|null|undefined|false|Array<Node|string>)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * Creates an SVG element (same `attrs` rules as {@link h}).
 * @param {string} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...(Node|string|null|undefined|false)} children
 * @returns {SVGElement}
 */
export function s(tag, attrs = {}, ...children) {
  const el = /** @type {SVGElement} */ (document.createElementNS(SVG_NS, tag));
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** @param {Element} el @param {Record<string, unknown>} attrs */
function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.setAttribute('class', String(value));
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(/** @type {HTMLElement} */ (el).dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
}

/** @param {Element} el @param {unknown[]} children */
function append(el, children) {
  for (const child of children.flat(2)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/**
 * Text with `inline code` spans, as agents write it; everything stays text.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function richText(text) {
  const fragment = document.createDocumentFragment();
  text.split(/(`[^`\n]+`)/).forEach((part) => {
    if (part.length > 2 && part.startsWith('`') && part.endsWith('`')) {
      fragment.append(h('code', { text: part.slice(1, -1) }));
    } else if (part) fragment.append(part);
  });
  return fragment;
}

/**
 * A time as the page shows it: local HH:MM:SS.
 * @param {string | null | undefined} iso
 */
export function clock(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString([], { hour12: false });
}

/**
 * Whether a scroll box is (nearly) at its bottom, so new content may follow it.
 * @param {HTMLElement} el
 */
export function atBottom(el) {
  return el.scrollHeight - el.scrollTop - el.clientHeight < 48;
}
