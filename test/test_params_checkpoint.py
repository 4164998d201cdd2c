# Copyright 2026 canet_ros developers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""The node's checkpoint path check says what is wrong: a folder is not a missing file."""
import pytest

from canet_ros.ros.params import ParamError, check_checkpoint_file


def test_a_folder_is_reported_as_a_folder(tmp_path):
    folder = tmp_path / "dir.pt"
    folder.mkdir()
    with pytest.raises(ParamError) as raised:
        check_checkpoint_file(str(folder))
    # The checkpoint loader's wording (canet_ros.checkpoint.read_checkpoint).
    assert str(raised.value) == f"checkpoint '{folder}': a folder, not a checkpoint file"


def test_home_is_reported_as_a_folder_with_its_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ParamError) as raised:
        check_checkpoint_file("~")
    assert str(raised.value) == f"checkpoint '~' ({tmp_path}): a folder, not a checkpoint file"


def test_a_missing_file_is_still_no_such_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ParamError, match=r"^checkpoint '/nonexistent/model.pt': no such file$"):
        check_checkpoint_file("/nonexistent/model.pt")
    with pytest.raises(ParamError) as raised:
        check_checkpoint_file("~/model.pt")
    assert str(raised.value) == f"checkpoint '~/model.pt': no such file ({tmp_path}/model.pt)"


def test_a_file_and_default_pass(tmp_path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"")
    assert check_checkpoint_file(str(checkpoint)) == str(checkpoint)
    assert check_checkpoint_file("default") == "default"


@pytest.mark.parametrize("backbone", ["mobilenetv2", "resnet18"])
def test_an_empty_checkpoint_says_what_exists_for_its_backbone(backbone):
    from canet_ros.ros.params import check_checkpoint
    with pytest.raises(ParamError) as raised:
        check_checkpoint("  ", backbone)
    text = str(raised.value)
    assert text.startswith("checkpoint is empty")
    assert f"checkpoint:=/path/to/canet_{backbone}.pt" in text
    if backbone == "mobilenetv2":  # the bundled model is this backbone's: offer it, truly
        assert "no bundled model" not in text and "checkpoint:=default for the bundled" in text
    else:
        assert f"no bundled model exists for backbone '{backbone}'" in text
