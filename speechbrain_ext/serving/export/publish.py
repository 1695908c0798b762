"""Publishing an exported model folder on the Hugging Face hub, after checking that it stands alone."""

from __future__ import annotations

from pathlib import Path

from speechbrain_ext.serving.export.document import check_standalone
from speechbrain_ext.serving.export.nodes import SSL_ENCODER, TEXT_ENCODER, nodes_of


def publish(
    folder: str | Path, repo_id: str, private: bool = False, dry_run: bool = False, token: str | None = None
) -> list[str]:
    """Create ``repo_id`` on the Hugging Face hub (if needed) and upload ``folder``.

    Arguments
    ---------
    folder : str or Path
        An exported model folder.
    repo_id : str
        ``org/name``.
    private : bool
        Create a private repository.
    dry_run : bool
        Only list what would be sent; nothing touches the network.
    token : str, optional
        Hub token (default: the logged-in user's).

    Returns
    -------
    list of str
        The files sent (or that would be sent).
    """
    folder = Path(folder)
    required = ["hyperparams.yaml", "model.ckpt", "custom_interface.py", "README.md"]
    missing = [f for f in required if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder}: not an exported model folder (missing {', '.join(missing)}); run `python -m speechbrain_ext.hub export` first"
        )
    values = check_standalone(folder)
    if repo_id.count("/") != 1:
        raise ValueError(f"repo id must look like org/name, got {repo_id!r}")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    total = sum((folder / f).stat().st_size for f in files)
    print(
        f"{'[dry run] would upload' if dry_run else 'uploading'} {len(files)} files ({total / 1e6:.1f} MB) to https://huggingface.co/{repo_id} ({'private' if private else 'public'}):"
    )
    for f in files:
        print(f"  {f}  {(folder / f).stat().st_size / 1e6:.2f} MB")
    for kind in (SSL_ENCODER, TEXT_ENCODER):
        for encoder in nodes_of(values["model"], kind):
            print(
                f"  encoder configuration (in hyperparams.yaml): {encoder['config'].get('model_type')}, {encoder['config'].get('num_hidden_layers')} layers, base model {encoder.get('source')}"
            )
    if dry_run:
        return files
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        commit_message="Upload model exported by speechbrain_ext.hub",
    )
    return files
