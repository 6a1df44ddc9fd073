// Tell the server the browser's time zone, so times are shown in the viewer's zone.
(function () {
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone || !/^[A-Za-z0-9_+\-\/]+$/.test(zone)) { return; }
  var wanted = "tz=" + zone;
  var has = function () { return document.cookie.split("; ").indexOf(wanted) !== -1; };
  if (has()) { return; }
  var secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = wanted + "; path=/; max-age=31536000; SameSite=Lax" + secure;
  // The page was drawn in another zone: draw it again, once (never if cookies are refused).
  if (has() && document.documentElement.dataset.tz !== zone) { location.reload(); }
})();
