// The rows of page 06's narrow ledger carry their own ids ("claim-C9", cwl_lib.comparison.ROW_ANCHOR), so a link
// from the intro's verdict box lands on its row without script; this only outlines the row it landed on.
document.addEventListener("DOMContentLoaded", () => {
  const target = location.hash ? document.getElementById(decodeURIComponent(location.hash.slice(1))) : null;
  if (target && target.tagName === "TR") {
    target.classList.add("claim-targeted");
    target.scrollIntoView();
  }
});
