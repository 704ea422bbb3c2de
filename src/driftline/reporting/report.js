// driftline report: the window picker of drift histograms. The charts themselves are drawn by
// the report generator; this script only moves the bars of a chart to another window's counts.
// ?window=YYYY-MM-DD in the page URL opens every histogram on that window.
(function () {
  "use strict";
  var root = document.documentElement;

  // Errors are counted on <html data-errors>, so a headless browser can check the page is clean.
  window.addEventListener("error", function (event) {
    root.setAttribute("data-errors", String(Number(root.getAttribute("data-errors")) + 1));
    root.setAttribute("data-last-error", String(event.message));
  });

  var DATA = JSON.parse(document.getElementById("driftline-data").textContent);

  function shortLabel(text) {
    return text.length <= 18 ? text : text.slice(0, 17) + "\u2026";
  }

  function percent(share) {
    return Number((share * 100).toPrecision(3)) + "%";
  }

  function total(counts) {
    return counts.reduce(function (sum, c) { return sum + c; }, 0);
  }

  function formatNumber(value) {
    if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString("en-US");
    return String(Number(value.toPrecision(4)));
  }

  // Show window `index` of one column's figure: pick the chart with that many bins, then set
  // each bar's height from its share (the y scale is fixed per column, stored on the svg).
  function drawWindow(figure, index) {
    var h = DATA.hist[figure.getAttribute("data-hist")];
    var labels = h.labels[h.li[index]];
    var counts = [h.ref[h.ri[index]], h.cur[index]];
    var totals = [total(counts[0]), total(counts[1])];
    var names = ["reference", "current"];
    var chosen = null;
    figure.querySelectorAll(".bins").forEach(function (bins) {
      var match = Number(bins.getAttribute("data-bins")) === labels.length;
      bins.hidden = !match || chosen !== null;
      if (match && chosen === null) chosen = bins;
    });
    var svg = chosen.querySelector("svg");
    var baseline = Number(svg.getAttribute("data-y0"));
    var height = Number(svg.getAttribute("data-ph"));
    var top = Number(svg.getAttribute("data-ymax"));
    svg.querySelectorAll("rect.bar").forEach(function (rect) {
      var s = Number(rect.getAttribute("data-s"));
      var i = Number(rect.getAttribute("data-i"));
      var share = totals[s] ? counts[s][i] / totals[s] : 0;
      var px = share / top * height;
      rect.setAttribute("y", (baseline - px).toFixed(1));
      rect.setAttribute("height", px.toFixed(1));
      rect.querySelector("title").textContent = labels[i] + " \u00b7 " + names[s] + ": " + percent(share);
    });
    svg.querySelectorAll("text.cat").forEach(function (text) {
      text.textContent = shortLabel(labels[Number(text.getAttribute("data-i"))]);
    });
    return h.w[index] + caption(figure, index) + " \u00b7 " + formatNumber(totals[1]) + " rows";
  }

  function caption(figure, index) {
    var values = DATA.values[figure.getAttribute("data-values")];
    if (!values || values.v[index] === null) return "";
    return " \u00b7 " + figure.getAttribute("data-metric") + " " + formatNumber(values.v[index]) +
      " (" + values.s[index] + ")";
  }

  function requestedWindow(figure) {
    var wanted = new URLSearchParams(window.location.search).get("window");
    var windows = DATA.hist[figure.getAttribute("data-hist")].w;
    var index = wanted === null ? -1 : windows.indexOf(wanted);
    return index >= 0 ? index : windows.length - 1;
  }

  function setUpPanel(panel) {
    var select = panel.querySelector("select.hist-column");
    var slider = panel.querySelector("input.hist-window");
    var output = panel.querySelector("output.hist-caption");
    var figures = Array.prototype.slice.call(panel.querySelectorAll("figure.hist"));

    function current() {
      return figures[Number(select.value)];
    }
    function draw() {
      output.textContent = drawWindow(current(), Number(slider.value));
    }
    function showColumn() {
      figures.forEach(function (figure) { figure.hidden = figure !== current(); });
      slider.max = String(DATA.hist[current().getAttribute("data-hist")].w.length - 1);
      slider.value = String(requestedWindow(current()));
      draw();
    }
    select.addEventListener("change", showColumn);
    slider.addEventListener("input", draw);
    showColumn();
  }

  document.querySelectorAll(".hist-panel").forEach(setUpPanel);
  root.setAttribute("data-ok", "1");
})();
