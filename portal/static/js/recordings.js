// A recording's tracks (one video per person) play side by side; "Play together" starts and
// pauses them as one, from the same moment. Its pressed state follows the players (a track
// that ends, or is paused from its own controls, counts).

for (const button of document.querySelectorAll("button[data-play-together]")) {
  const videos = [...document.querySelectorAll(`#${button.dataset.playTogether} video`)];
  button.hidden = videos.length < 2;
  if (button.hidden) { continue; }
  const show = () => {
    button.setAttribute("aria-pressed", videos.some((v) => !v.paused) ? "true" : "false");
  };
  for (const v of videos) {
    for (const type of ["play", "pause", "ended"]) { v.addEventListener(type, show); }
  }
  button.addEventListener("click", () => {
    if (videos.some((v) => !v.paused)) {
      for (const v of videos) { v.pause(); }
    } else {
      const at = videos[0].currentTime;
      for (const v of videos) {
        v.currentTime = at;
        v.play().catch(() => {});
      }
    }
    show();
  });
}
