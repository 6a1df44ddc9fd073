// A question before an action that cannot be undone (leave the call, end it for everyone), in
// the page's own <dialog>: a screen reader reads it, the keyboard answers it (Escape is "no"),
// and focus starts on the safe answer and returns to the button that asked.

/** dialog: a <dialog> holding [data-answer="yes"] and [data-answer="no"]; resolves true/false. */
export function askFirst(dialog, {opener = document.activeElement} = {}) {
  return new Promise((resolve) => {
    const done = (answer) => {
      dialog.removeEventListener("click", onClick);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) { dialog.close(); }
      if (!answer && opener && opener.focus) { opener.focus(); }
      resolve(answer);
    };
    const onClick = (event) => {
      const button = event.target.closest("[data-answer]");
      if (button) { done(button.dataset.answer === "yes"); }
    };
    const onClose = () => done(false);
    dialog.addEventListener("click", onClick);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    dialog.querySelector('[data-answer="no"]').focus();
  });
}
