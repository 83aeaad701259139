"""Print docs/options.md from the core's option table (the installed chirp's):

python tools/options_doc.py > docs/options.md
"""

from chirp.config import options_markdown

if __name__ == "__main__":
    print(options_markdown(), end="")
