"""The editor's keys: every action with its keys and tip (menus, tool buttons and
the keyboard help are made from this table), and the mouse actions for the help."""

from __future__ import annotations

# (name, text, icon, keys, tip): the editor's actions, in the order menus show them
ACTIONS = (
    ("next", "Next sample", "next", ["J"], "Next sample in the queue"),
    ("previous", "Previous sample", "previous", ["K"], "Previous sample in the queue"),
    ("next_flag", "Next flagged point", "", ["Tab"],
     "Select the next flagged landmark, worst first"),
    ("previous_flag", "Previous flagged point", "", ["Shift+Tab", "Backtab"],
     "Select the previous flagged landmark"),
    ("next_point", "Next landmark", "", ["N"], "Select the next landmark (schema order)"),
    ("previous_point", "Previous landmark", "", ["Shift+N"],
     "Select the previous landmark (schema order)"),
    ("accept", "Accept", "accept", ["A"],
     "Accept the model's estimate for the selected landmark"),
    ("accept_all", "Accept flagged", "accept-all", ["Shift+A"],
     "Accept the model's estimate for every flagged landmark"),
    ("accept_every", "Accept the model's whole label", "", ["Ctrl+Shift+A"],
     "Replace every landmark with the model's estimate"),
    ("confirm", "Label is right", "confirm", ["C"], "Confirm the label is right and go on"),
    ("exclude", "Exclude", "exclude", ["X"], "Exclude the sample from training and export"),
    ("visibility", "Visible / occluded / not labelled", "visibility", ["V"],
     "Cycle the selected landmark: visible, occluded, not labelled"),
    ("swap", "Swap left and right", "swap", ["S"],
     "Exchange every left/right pair (a label whose sides are swapped)"),
    ("nudge_left", "Nudge left", "", ["Left"], ""),
    ("nudge_right", "Nudge right", "", ["Right"], ""),
    ("nudge_up", "Nudge up", "", ["Up"], ""),
    ("nudge_down", "Nudge down", "", ["Down"], ""),
    ("nudge_left_10", "Nudge left 10 px", "", ["Shift+Left"], ""),
    ("nudge_right_10", "Nudge right 10 px", "", ["Shift+Right"], ""),
    ("nudge_up_10", "Nudge up 10 px", "", ["Shift+Up"], ""),
    ("nudge_down_10", "Nudge down 10 px", "", ["Shift+Down"], ""),
    ("undo", "Undo", "undo", ["Ctrl+Z"], "Undo the last edit (then this sample's history)"),
    ("redo", "Redo", "redo", ["Ctrl+Shift+Z", "Ctrl+Y"], "Redo the last undone edit"),
    ("fit", "Fit", "fit", ["F"], "Fit the image to the view"),
    ("zoom_in", "Zoom in", "zoom-in", ["+", "="], "Zoom in"),
    ("zoom_out", "Zoom out", "zoom-out", ["-"], "Zoom out"),
    ("model", "Model overlay", "model", ["M"], "Show or hide the model's estimates"),
    ("predictions", "All estimates", "accept-all", ["P"],
     "Show the model's estimate of every landmark"),
)
NUDGES = {"nudge_left": (-1, 0), "nudge_right": (1, 0), "nudge_up": (0, -1),
          "nudge_down": (0, 1)}
# arrows and Tab act on the landmarks only while the editor has the focus: in the queue
# the arrows move the rows and Tab moves the focus
EDITOR_ONLY = {n for n in (a[0] for a in ACTIONS)
               if n.startswith("nudge") or n in ("next_flag", "previous_flag", "next_point",
                                                  "previous_point")}
# mouse actions, for the keyboard help
MOUSE = (("Drag a point", "Move it (committed on release)"),
         ("Drag the background", "Pan"),
         ("Wheel", "Zoom about the cursor"),
         ("Double-click the background", "Fit the image to the view"),
         ("Click a point, or its name in the list", "Select it"),
         ("Hover a point", "Its name and P(wrong)"),
         ("Right-click rows in the queue", "Confirm, exclude or reset them together"))
