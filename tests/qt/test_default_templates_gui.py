"""The window takes a model's own prompt style (prompts.default_templates' rule), shown in the
label editor, and keeps the user's choice for a model that names none."""

from __future__ import annotations

from clipdesk.core.settings import Settings


def test_demo_model_brings_its_prompts_and_plain_weights_keep_the_users(qtbot, open_window):
    from clipdesk.qt.main_window import MainWindow, ModelChoice

    settings = Settings.load()
    settings.values["templates"] = "ensemble"  # the user's saved choice
    plain = open_window(settings)  # the tiny random model: its metadata names no prompts
    assert plain.session.templates == "ensemble"
    demo = MainWindow(ModelChoice("demo", "demo", "cpu", "torch"), settings, batch_size=8)
    qtbot.addWidget(demo)
    demo.show()
    qtbot.waitUntil(lambda: demo.model_ready, timeout=60000)
    assert demo.session.templates == "none"  # the demo model was trained on bare label names
    assert demo.label_editor.templates.currentData() == "none"
    demo.close()
