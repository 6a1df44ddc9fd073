// A recording's tracks (one video per person) play side by side; "Play together" starts and
// pauses them as one, from the same moment.

for (const button of document.querySelectorAll("button[data-play-together]")) {
  const videos = [...document.querySelectorAll(`#${button.dataset.playTogether} video`)];
  button.hidden = videos.length < 2;
  button.addEventListener("click", () => {
    const playing = videos.some((v) => !v.paused);
    if (playing) {
      for (const v of videos) { v.pause(); }
    } else {
      const at = videos[0].currentTime;
      for (const v of videos) {
        v.currentTime = at;
        v.play().catch(() => {});
      }
    }
    button.setAttribute("aria-pressed", playing ? "false" : "true");
  });
}
