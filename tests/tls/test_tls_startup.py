"""Bad certificate or DH files are refused when the node starts, with a
message that names the option, the file and the problem.  No network
namespace is needed: the TLS context is built before anything connects."""

import re

import pytest

import chirp

PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----\n?", re.S)


def blocks(path):
    """The PEM blocks of a file, as (type, text)."""
    with open(path) as f:
        return [(m.group(1), m.group(0)) for m in PEM_BLOCK.finditer(f.read())]


@pytest.fixture(scope="module")
def bad_files(pki, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_pem")
    a = blocks(pki["a"])
    b = blocks(pki["b"])
    # libchirp's layout, as make_pki writes it
    assert [t for t, _ in a] == ["CERTIFICATE", "CERTIFICATE", "PRIVATE KEY"], a
    files = {
        "garbage": "this is not PEM at all\n" * 20,
        "empty": "",
        "cert_no_key": a[0][1] + a[1][1],
        "key_no_cert": a[2][1],
        "wrong_key": a[0][1] + a[1][1] + b[2][1],
        "dh_garbage": "-----BEGIN DH PARAMETERS-----\nAAAAgarbage\n-----END DH PARAMETERS-----\n",
        "dh_text": "no parameters here\n",
    }
    paths = {}
    for name, text in files.items():
        p = d / f"{name}.pem"
        p.write_text(text)
        paths[name] = str(p)
    return paths


@pytest.fixture
def node_options():
    """node_factory's nodes here encrypt, on IPv4 only."""
    return {"disable_encryption": False, "bind_v6": ""}


def refused(node_factory, **kw):
    """The exception of starting a node with these options."""
    with pytest.raises((chirp.TLSError, ValueError)) as info:
        n = node_factory(**kw)
        n.close()
    return info.value


@pytest.mark.parametrize(
    "name, problem",
    [
        ("garbage", "certificate"),
        ("empty", "certificate"),
        ("key_no_cert", "certificate"),
        ("cert_no_key", "private key"),
        ("wrong_key", "key"),
    ],
)
def test_bad_cert_chain_is_refused(node_factory, bad_files, name, problem):
    e = refused(node_factory, cert_chain_pem=bad_files[name])
    msg = str(e)
    assert "cert_chain_pem" in msg, msg
    assert bad_files[name] in msg, msg
    assert problem in msg, msg


def test_wrong_key_says_mismatch(node_factory, bad_files):
    msg = str(refused(node_factory, cert_chain_pem=bad_files["wrong_key"]))
    assert "mismatch" in msg or "does not match" in msg, msg


@pytest.mark.parametrize("name", ["dh_garbage", "dh_text"])
def test_bad_dh_params_are_refused(node_factory, pki, bad_files, name):
    e = refused(node_factory, cert_chain_pem=pki["a"], dh_params_pem=bad_files[name])
    msg = str(e)
    assert "dh_params_pem" in msg and bad_files[name] in msg, msg
    assert "DH" in msg, msg


def test_dh_params_pem_given_a_certificate_is_refused(node_factory, pki):
    msg = str(refused(node_factory, cert_chain_pem=pki["a"], dh_params_pem=pki["ca"]))
    assert "dh_params_pem" in msg and "DH" in msg, msg


@pytest.mark.parametrize("option", ["cert_chain_pem", "dh_params_pem"])
def test_missing_file_is_refused(node_factory, pki, tmp_path, option):
    kw = {"cert_chain_pem": pki["a"], "dh_params_pem": pki["dh"]}
    kw[option] = str(tmp_path / "does-not-exist.pem")
    msg = str(refused(node_factory, **kw))
    assert option in msg and "does-not-exist.pem" in msg, msg


def test_good_files_start(node_factory, pki):
    """The control: the files make_pki wrote are accepted."""
    with node_factory(cert_chain_pem=pki["a"], dh_params_pem=pki["dh"]) as n:
        assert n.port > 0
    with node_factory(cert_chain_pem=pki["b"]) as n:  # DH parameters are optional
        assert n.port > 0


def test_refused_node_leaves_nothing_behind(node_factory, bad_files, pki):
    """A refused start does not leave the port or a thread behind: many
    refused starts in a row, then a good node starts normally."""
    import threading

    before = threading.active_count()
    for _ in range(20):
        refused(node_factory, cert_chain_pem=bad_files["wrong_key"])
    assert threading.active_count() <= before, threading.enumerate()
    with node_factory(cert_chain_pem=pki["a"]) as n:
        assert n.port > 0
