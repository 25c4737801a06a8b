"""Key types the CA accepts and generates: EC P-256 / P-384 and RSA of 2048 to 8192 bits.

Nothing here logs, prints or reprs key material; PEM encoding of a private key is explicit (`private_key_pem`).
"""

from __future__ import annotations

import enum

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "KeyAlgorithm",
    "PrivateKey",
    "PublicKey",
    "describe_public_key",
    "generate_private_key",
    "key_problem",
    "load_private_key_pem",
    "private_key_pem",
    "signature_hash",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
_CURVES: dict[str, int] = {"secp256r1": 256, "secp384r1": 384}


class KeyAlgorithm(enum.Enum):
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"


def generate_private_key(algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256) -> PrivateKey:
    if algorithm is KeyAlgorithm.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm is KeyAlgorithm.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    bits = int(algorithm.value.removeprefix("rsa-"))
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_problem(key: object) -> str | None:
    """Why a public key is not acceptable, or None when it is (EC P-256/P-384, RSA 2048..8192 bits)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVES:
            return f"EC curve {key.curve.name} is not accepted (use P-256 or P-384)"
        return None
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            return f"RSA key of {key.key_size} bits is not accepted (use {MIN_RSA_BITS} to {MAX_RSA_BITS} bits)"
        return None
    return f"{type(key).__name__.removeprefix('_')} keys are not accepted (use EC P-256/P-384 or RSA >= 2048 bits)"


def describe_public_key(key: PublicKey) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    return f"RSA {key.key_size}"


def signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    """The digest to sign with: SHA-384 for P-384 keys, SHA-256 otherwise."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def private_key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM. The caller is responsible for where these bytes go."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key_pem(data: bytes) -> PrivateKey:
    """Load an unencrypted PEM private key of an accepted type; ValueError (never echoing the data) otherwise."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        # The message of the underlying error never contains key bytes, but keep ours generic anyway.
        raise ValueError(f"not an unencrypted PEM private key ({type(exc).__name__})") from None
    except Exception as exc:  # UnsupportedAlgorithm and friends
        raise ValueError(f"unsupported private key ({type(exc).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(key_problem(key.public_key()) or "unsupported private key type")
    problem = key_problem(key.public_key())
    if problem:
        raise ValueError(problem)
    return key
