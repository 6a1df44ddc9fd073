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

/**
 * The locales to write a time of day in: the browser's own (its region decides 24 or 12
 * hours: en-GB "17:03", en-US "5:03 PM"), those of the page's language first, then the page's.
 */
export function timeLocales(pageLang, browserLangs) {
  const base = (tag) => {
    const lang = String(tag || "").toLowerCase().split("-")[0];
    return lang === "no" || lang === "nn" ? "nb" : lang;
  };
  const browser = (browserLangs || []).filter((tag) => {
    try { return Intl.DateTimeFormat.supportedLocalesOf([tag]).length > 0; } catch (e) { return false; }
  });
  const page = base(pageLang);
  return [...browser.filter((tag) => base(tag) === page),
    ...browser.filter((tag) => base(tag) !== page), ...(pageLang ? [pageLang] : [])];
}

/** "14:05" as this browser writes a time, or "" for a time that does not parse. */
export function timeOfDay(iso, locales = timeLocales(document.documentElement.lang,
  navigator.languages || [navigator.language])) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) { return ""; }
  return when.toLocaleTimeString(locales.length ? locales : undefined,
    {hour: "2-digit", minute: "2-digit"});
}
