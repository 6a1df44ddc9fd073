// Translated strings: templates put them into a JSON <script>; "{name}" placeholders are filled
// here, and the result only ever goes into textContent, so names never pass through HTML.

/** Fill "{name}" placeholders from vars; unknown ones stay as they are. */
export function format(template, vars) {
  return String(template).replace(/\{(\w+)\}/g, (whole, key) =>
    vars && Object.prototype.hasOwnProperty.call(vars, key) ? String(vars[key]) : whole);
}

/** t(key, vars) over a table of strings; a missing key shows as itself. */
export function translator(table) {
  return (key, vars) => format(table[key] !== undefined ? table[key] : key, vars);
}

/** The strings a template put into <script type="application/json" id="...">. */
export function readStrings(id) {
  return JSON.parse(document.getElementById(id).textContent);
}

/** "14:05" in the page's language, or "" for a time that does not parse. */
export function timeOfDay(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) { return ""; }
  return when.toLocaleTimeString(document.documentElement.lang || undefined,
    {hour: "2-digit", minute: "2-digit"});
}
