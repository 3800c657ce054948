/* The compose page without inline script (the CSP forbids it): an attachment larger than the
   limit is refused before the upload starts, and the directory suggests correspondents after
   three letters. Without JavaScript the server does both (413 in French, "Rechercher"). */
(function () {
  "use strict";
  var form = document.getElementById("ecrire");
  if (!form) { return; }
  var limit = parseInt(form.getAttribute("data-max-attachment"), 10);
  var files = document.getElementById("pieces");
  var problem = document.getElementById("pieces-erreur");
  function megabytes(n) { return (n / 1048576).toLocaleString("fr-FR", {maximumFractionDigits: 1}) + " Mo"; }
  function tooBig() {
    for (var i = 0; files && i < files.files.length; i++) {
      if (files.files[i].size > limit) { return files.files[i]; }
    }
    return null;
  }
  if (files) {
    files.addEventListener("change", function () {
      var big = tooBig();
      problem.hidden = !big;
      problem.textContent = big ? "La pièce jointe « " + big.name + " » dépasse " + megabytes(limit) +
        " : chaque pièce jointe peut faire au plus " + megabytes(limit) + "." : "";
    });
  }
  form.addEventListener("submit", function (event) {
    var action = event.submitter ? event.submitter.value : "envoyer";
    if (action !== "rechercher" && tooBig()) { event.preventDefault(); problem.hidden = false; }
  });
  var list = document.getElementById("annuaire-suggestions");
  var results = document.getElementById("resultats-annuaire");
  var timer = null;
  var lastField = document.getElementById("a");
  function show(items) {
    while (list.firstChild) { list.removeChild(list.firstChild); }
    items.forEach(function (s) {
      var option = document.createElement("option");
      option.value = s.address;
      option.textContent = s.name + " — " + (s.profession || "") + " — " + (s.city || "");
      list.appendChild(option);
    });
  }
  function lookup(text) {
    var words = text.split(",");
    var q = words[words.length - 1].trim();
    if (q.length < 3 || q.indexOf("@") >= 0) { return; }
    fetch("/courrier/annuaire?q=" + encodeURIComponent(q), {credentials: "same-origin",
      headers: {"accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : {results: []}; })
      .then(function (data) { show(data.results || []); })
      .catch(function () { /* the "Rechercher" button still works */ });
  }
  ["a", "cc", "cci"].forEach(function (id) {
    var input = document.getElementById(id);
    if (!input) { return; }
    input.addEventListener("focus", function () { lastField = input; });
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { lookup(input.value); }, 250);
    });
  });
  if (results) {
    results.addEventListener("click", function (event) {
      var address = event.target.getAttribute && event.target.getAttribute("data-address");
      if (!address || !lastField) { return; }
      var value = lastField.value.trim();
      lastField.value = value ? value.replace(/,?\s*$/, ", ") + address : address;
    });
  }
}());
