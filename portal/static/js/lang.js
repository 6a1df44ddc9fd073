// On pages whose address must not travel in a ?next= link (the guest's /j/<token> page), the
// language switch sets its cookie in the background and reloads the same page.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-lang-reload]");
  if (!link) { return; }
  event.preventDefault();
  fetch(link.href, {credentials: "same-origin", redirect: "manual"})
    .then(() => location.reload())
    .catch(() => { location.href = link.href; });
});
