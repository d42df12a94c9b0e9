// The page-side probes of the load test's browser driver (browser.py reads this file).
// Each section starts with a line "//# name", then its comment lines, then one
// script: "init" is added to every page before its own scripts; the others are
// functions that page.wait_for_function / page.evaluate call with their argument.

//# init
// Records the script state's transitions and the input events with the page's clock.
(() => {
  if (window.__flux) return;
  const f = window.__flux = {log: [], input: []};
  const mark = () => f.input.push(performance.now());
  document.addEventListener('pointerdown', mark, true);
  document.addEventListener('keydown', mark, true);
  // A fast run flips running -> notRunning within one batch of mutations: the value
  // each mutation set is the next one's old value (the attribute itself only shows
  // the last), so no run goes unseen on a busy page.
  new MutationObserver(ms => {
    const now = performance.now();
    const app = ms.filter(m => m.target.getAttribute('data-testid') === 'stApp');
    for (let k = 0; k < app.length; k++) {
      const s = k + 1 < app.length ? app[k + 1].oldValue
                                   : app[k].target.getAttribute('data-test-script-state');
      if (s === null) continue;
      const last = f.log[f.log.length - 1];
      if (!last || last[1] !== s) f.log.push([now, s]);
    }
  }).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                        attributeFilter: ['data-test-script-state']});
})();

//# settled
// True once a run started after t0 and the app is idle again with its heading shown;
// returns the page-clock times of the input, the run's start and its end.
([t0, heading]) => {
  const f = window.__flux;
  const app = document.querySelector('[data-testid="stApp"]');
  if (!f || !app) return false;
  if (app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  if (app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  const i = f.log.findIndex(e => e[0] >= t0 && e[1] === 'running');
  if (i < 0) return false;
  let end = null;
  for (let k = i + 1; k < f.log.length; k++) if (f.log[k][1] === 'notRunning') end = f.log[k][0];
  if (end === null) return false;
  const h = document.querySelector('[data-testid="stMain"] h1');
  if (!h || h.offsetParent === null || (heading && !h.textContent.includes(heading)))
    return false;
  const inputs = f.input.filter(t => t >= t0 && t <= f.log[i][0]);
  const input = inputs.length ? inputs[inputs.length - 1] : t0;
  return {input: input, ran: f.log[i][0], end: end, now: performance.now()};
}

//# started
// 'ran' once a run started after t0; 'none' when none did within `wait` ms (app idle).
([t0, wait]) => {
  const f = window.__flux;
  if (f && f.log.some(e => e[0] >= t0 && e[1] === 'running')) return 'ran';
  const app = document.querySelector('[data-testid="stApp"]');
  if (performance.now() - t0 > wait && app
      && app.getAttribute('data-test-script-state') === 'notRunning') return 'none';
  return false;
}

//# idle
// The app idle and connected (never click into a run in progress).
() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
    && app.getAttribute('data-test-connection-state') === 'CONNECTED';
}

//# state
// What the page shows after a failed action (for the error message).
() => {
  const f = window.__flux || {log: [], input: []};
  const app = document.querySelector('[data-testid="stApp"]');
  const h = document.querySelector('[data-testid="stMain"] h1');
  return {now: Math.round(performance.now()),
          script: app && app.getAttribute('data-test-script-state'),
          connection: app && app.getAttribute('data-test-connection-state'),
          heading: h && h.textContent, log: f.log.slice(-4).map(e => [Math.round(e[0]), e[1]]),
          input: f.input.slice(-3).map(Math.round)};
}

//# opened
// A freshly opened page: connected, idle, with its heading (no run before it to wait for).
(heading) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning'
      || app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  const h = document.querySelector('[data-testid="stMain"] h1');
  return !!h && h.offsetParent !== null && h.textContent.includes(heading);
}
