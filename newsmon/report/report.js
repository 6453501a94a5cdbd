// Filters over the embedded data: no server, no network. Story i in the data is child i of #list.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("data").textContent);
  var list = document.getElementById("list").children;
  var stories = data.stories.map(function (row, i) {
    var el = list[i];
    return {el: el, labels: row[0], sources: row[1], langs: row[2], score: row[3],
            title: el.querySelector("h3").textContent.toLowerCase()};
  });
  function fill(id, names) {
    var select = document.getElementById(id);
    names.map(function (name, i) { return [name, i]; })
      .sort(function (a, b) { return a[0].localeCompare(b[0]); })
      .forEach(function (pair) {
        var option = document.createElement("option");
        option.value = String(pair[1]);
        option.textContent = pair[0];
        select.appendChild(option);
      });
  }
  fill("f-label", data.labels);
  fill("f-source", data.sources);
  fill("f-lang", data.languages);
  function value(id) { return document.getElementById(id).value; }
  function apply() {
    var label = value("f-label"), source = value("f-source"), lang = value("f-lang");
    var minScore = parseFloat(value("f-score")) || 0;
    var words = value("f-text").toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    stories.forEach(function (s) {
      var ok = (label === "" || s.labels.indexOf(+label) >= 0) &&
        (source === "" || s.sources.indexOf(+source) >= 0) &&
        (lang === "" || s.langs.indexOf(+lang) >= 0) && s.score >= minScore &&
        words.every(function (w) { return s.title.indexOf(w) >= 0; });
      s.el.hidden = !ok;
      if (ok) { shown += 1; }
    });
    document.getElementById("count").textContent =
      shown === stories.length ? stories.length + " stories" : shown + " of " + stories.length + " stories shown";
  }
  ["f-label", "f-source", "f-lang", "f-score", "f-text"].forEach(function (id) {
    document.getElementById(id).addEventListener("input", apply);
  });
  apply();
})();
