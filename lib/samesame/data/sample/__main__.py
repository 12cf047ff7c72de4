"""``python -m samesame.data.sample OUT_DIR [--groups N] [--seed S]``: see :func:`samesame.data.sample.cli.main`."""

from samesame.data.sample.cli import main

if __name__ == "__main__":
    main()
