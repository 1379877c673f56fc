// Run by the scanner (`cmp.rs`) in each frame of the page, in a world of its own (no access
// to the frame's scripts, only its DOM): finds, and when `act` clicks, the known button of
// a CMP whose banner is a cross-origin frame (Sourcepoint's message, TrustArc's preference
// manager). A CMP with `within` is only looked for in a frame that holds that element (its
// buttons' class names are too common to trust elsewhere). Returns {cmp, method, made}
// when it found one, else {cmp: null}.
(choice, act) => {
  const kind = choice.kind;
  const buttons = [
    { name: "sourcepoint", accept_all: [".sp_choice_type_11"], reject_all: [".sp_choice_type_13"] },
    // Its first layer: "agree and proceed", and "reject all" or "required cookies only".
    {
      name: "trustarc",
      within: "#defaultpreferencemanager",
      accept_all: [".call"],
      reject_all: [".rejectAll", ".required"],
    },
  ];
  for (const b of buttons) {
    if (b.within && !document.querySelector(b.within)) continue;
    for (const sel of b[kind] || []) {
      const el = document.querySelector(sel);
      if (el) {
        const r = el.getBoundingClientRect();
        if (r.width > 0 && r.height > 0) {
          if (!act) return { cmp: b.name, made: false };
          el.click();
          return { cmp: b.name, method: "selector", made: true };
        }
      }
    }
  }
  return { cmp: null, made: false };
}
