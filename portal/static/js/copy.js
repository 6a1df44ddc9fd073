// Copy buttons ([data-copy] names the id of the field whose value is copied): the new invite
// link on the appointment page. The result is said in the button's status line.

for (const button of document.querySelectorAll("button[data-copy]")) {
  const field = document.getElementById(button.dataset.copy);
  const status = document.getElementById(button.dataset.copyStatus);
  button.hidden = false;
  button.addEventListener("click", async () => {
    let copied = false;
    try {
      await navigator.clipboard.writeText(field.value);
      copied = true;
    } catch (err) {
      // No clipboard permission (an old browser, http): select it, so Ctrl+C or a long
      // press copies it.
      field.focus();
      field.select();
    }
    if (status) { status.textContent = copied ? button.dataset.copied : button.dataset.selectIt; }
  });
}
