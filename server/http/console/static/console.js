// The console's only script: the dev sign-in link, and live refresh of running jobs.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // A sign-in link carries the token in the fragment (never sent to a server): move it
  // into the form, erase it from the address bar and history, and submit.
  const form = document.getElementById("signin");
  const linkSignIn = () => {
    const match = window.location.hash.match(/^#token=(.+)$/);
    if (!form || !match) return;
    history.replaceState(null, "", window.location.pathname + window.location.search);
    form.elements.token.value = decodeURIComponent(match[1]);
    form.submit();
  };
  linkSignIn();
  // A link opened on the sign-in page itself only changes the fragment.
  window.addEventListener("hashchange", linkSignIn);

  // Jobs: while a run is queued or running, fetch the table every two seconds.
  const jobs = document.getElementById("jobs");
  if (jobs) {
    const poll = async () => {
      const live = jobs.querySelector("table")?.dataset.live === "true";
      if (!live) return;
      try {
        const answer = await fetch(jobs.dataset.poll, { credentials: "same-origin" });
        if (answer.ok) jobs.innerHTML = await answer.text();
      } catch (e) {
        // A failed poll is retried on the next tick.
      }
      setTimeout(poll, 2000);
    };
    setTimeout(poll, 2000);
  }

  // One run: reload while it is live, so counts and failures stay current.
  const run = document.getElementById("run");
  if (run && run.dataset.reload === "true") setTimeout(() => window.location.reload(), 2000);
});
