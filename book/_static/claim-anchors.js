// Each row of page 06's claims ledger gets the id the intro's verdict box links to ("claim-C9"), unless the
// page already gives one; the row a link names is then scrolled to and outlined. The rows are pandas tables
// whose first cell is the claim's id, so this needs no change to how page 06 prints them.
document.addEventListener("DOMContentLoaded", () => {
  for (const row of document.querySelectorAll("table tr")) {
    const first = row.querySelector("th, td");
    const id = first && /^C\d+$/.test(first.textContent.trim()) ? "claim-" + first.textContent.trim() : null;
    if (id && !document.getElementById(id)) row.id = id;
  }
  const target = location.hash ? document.getElementById(decodeURIComponent(location.hash.slice(1))) : null;
  if (target && target.tagName === "TR") {
    target.classList.add("claim-targeted");
    target.scrollIntoView();
  }
});
