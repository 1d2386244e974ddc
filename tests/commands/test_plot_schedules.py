"""`mmpretrain plot-schedules`: a non-empty PNG per schedule plus the overlay; clear errors."""

from __future__ import annotations

from mmpretrain.commands import available_commands
from mmpretrain.commands.plot_schedules import main
from mmpretrain.continual.schedules import SCHEDULE_NAMES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_writes_one_png_per_schedule_and_an_overlay(tmp_path, capsys):
    assert "plot-schedules" in available_commands()
    out = tmp_path / "plots"
    assert main([str(out), "--steps-per-task", "20", "--tasks", "4"]) == 0
    expected = {f"{name}.png" for name in SCHEDULE_NAMES} | {"overlay.png"}
    assert {path.name for path in out.iterdir()} == expected
    for path in out.iterdir():
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, path.name
    assert str(out / "overlay.png") in capsys.readouterr().out


def test_bad_arguments_return_an_error(tmp_path, capsys):
    assert main([str(tmp_path), "--steps-per-task", "1", "--tasks", "3"]) == 2
    assert "steps_per_task must be" in capsys.readouterr().out
    assert main([str(tmp_path), "--steps-per-task", "20", "--tasks", "3",
                 "--anneal-start", "3"]) == 2  # inside the cooldown, not the constant phase
    assert "constant phase" in capsys.readouterr().out
    assert main([str(tmp_path), "--steps-per-task", "20", "--tasks", "0"]) == 2
