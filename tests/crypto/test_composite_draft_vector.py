"""The composite construction against the test vector for id-MLDSA65-Ed25519-SHA512 of
draft-ietf-lamps-pq-composite-sigs-19 (src/testvectors.json of
github.com/lamps-wg/draft-composite-sigs at that tag), base64 as published: the draft's raw
public key (ML-DSA-65 || Ed25519), private key (ML-DSA seed || Ed25519), the signature over
MESSAGE with an empty ctx and the one with CTX."""

from __future__ import annotations

import base64

import pytest

from crypto.composite import CompositeSigningKey, CompositeVerifyKey, split_draft_signature
from crypto.errors import VerificationError

# fmt: off
MESSAGE = (
    "VGhlIHF1aWNrIGJyb3duIGZveCBqdW1wcyBvdmVyIHRoZSBsYXp5IGRvZy4="
)
CTX = (
    "VGhlIGxldGhhcmdpYywgY29sb3JsZXNzIGRvZyBzYXQgYmVuZWF0aCB0aGUgZW5lcmdldGljLCBzdGF0aW9uYXJ5"
    "IGZveC4="
)
PK = (
    "lJHqFchj4m+jxLow4ARGz/Vgrwa0hpIrPMgTOBx6DouPmdO0P88unCWMDtG4ZFkRAkghkdXzsNTNqXzNws/PypD4"
    "w86l+KOGB/DrAJMZZK/Y3ndi6P+GQPbsOu/yoaHbiSFPb1g54PB9F2PxtNj2IvDwXmx/96weIwpf/FgKzbe5S6AA"
    "8wGfS+B55YV0//+Pl2xPOiGjs6f+XiIrwi1aLsm1sRjT2ZUqnXGXGwK3CbOFDnTyreR4ZRlrCVvTAYtkkhEMZbD7"
    "NML6HhD6LpyRAfdm8DKcvaSSekOdf0KIPdBJQ0df5BS5XOoW3SUzSDHmEa8K4B3j0x8VdZdIDjH9qXGreJpH48ru"
    "zC/P+URwNihiS9jZRZJkg3kZrbnBMXEQTCfM5CCx9/sU4Rm7WVHSPkGsaSRIHbcZSN3xBzgW+ZvdaP7e+SGcqdV6"
    "+KTUSZlOMknc2+/VpZ+vuL8AAUcYKQnnsg0zRSkWpgNRxtKpuCiZwpoSfF2GFdrr44TvZ6zpQym8EuhzZEy0JCjM"
    "zPuRd2OCPQm4JpIvRwnseJZ6IDdT0g2ji/pFIo2TdXzs1SmiemCyAPSGTQPUD3DDOXWvbTuncOA+bCbXpv6NbCtZ"
    "ESIZBLb0XH3Wh6xrjq26KSEx/cWIQadiY7l5drmm/3oFFkWbkgC9Ohi6wH/VnXrcXfHoMLJZdRh36sD8S7YGTBjZ"
    "5wQQqjEqU3eZt+HZ/MUyU4YAF10eunWOyhEKx73atWleDEilbqbgLmAvmh0JC3EuCvPYQIEe9pjNP6+2SKTSTPS3"
    "FmVJvlxwRyVzFiSiR9ae3qYCbiopTHW74LNZPPq7gIe6PQBYXEX4P/9v62AYsd4uOaQf8/xURZuEbQxyBQnKAyhw"
    "/h+5lqMEgoRndJBFyCspeQUFKV1PTpKfDzx/8vtJwKoknEYrCJ2LPqlC0dgFUIcFy5T9jMGDuVfJoX2L2XwIHw+m"
    "hSar3iKUDfFsOrculjZPTocLfghaO7UL+76PdmTuT9ZzAAHS3odX+w+xn73iagS0Xy326/oySZdsY247Uf1RXBAE"
    "RWKVolclnA9OpRrY9H1HgyWa05hw1GXDnFivAWSsLO6pqOhc2MFuZ+kpjJY5jQlW1IWecxYWtVhzxdJQlRBZisBL"
    "K55/0AUc5EbWepCNl6OCpi5l49T8TU1DJbZy4VxYg5KiTuoB3vZzHs4Eqb25V4QnB7rxA33ZN8fNFfxeUlDvQkOT"
    "PJ9H+HfA5QAE3xFHK9ai1QcR4Jjzp6++eKG9lYAgxQvC54yLLMoUGtpw9mL0iAF/Q3lgp91kn0/5B1FJsKg6n0i4"
    "84o8fHxFlcMVb5d/N9qQYvuqZV1qjjMrs1h0jBISA3xMmKKuZnUyvJVjOUOkeJ3ys+RTGjmmfr4CW/57FBVbv2FV"
    "G83YjrFI9ZfW/Fly4wbatKTXTyEyuy24MJO+l5HyD1ZBAJPVkYMNjmfXjxg4DwqWCykFaS7mbfHyfpUxPDxOvv8z"
    "yQeNl73mOnUQyvMbFwXYH9tXNpBRa51j/6odj1WdYwXHWlvIX0yyeG2pf7n+15qea5t/S270KVXV0TpA+YP3vuEH"
    "vMqunLEMXoRYtc+8QkGKHGA1Mg7gktc7QwZiZDxbczqMk3a7UHrzP1Vix7BnZFDxrqg1McpTwUL0132I46AcNMm8"
    "olftt/mcVi3y9S+1Dtfp9T9TiHvDc6JiYMiTqppqHUB2Td2ozB8QJknj9SDI3PQ5eUwjzQR+DCFvolAkNVL7c+k3"
    "VVuOAO8Pwt3mcQx/JbVbbE2ZYL2028RYi5Piw8JUDAN2q+nG+0XdyhtkMnoDUx8xVzrPbQvNmhpZ5Klita9O8p9N"
    "5YkVZ+rNgPV1+fuleGINKuVK8GVsMhOi4DErKg7QIlXOGWzkW/6IMpMYOJ53CVFpDbKlwq7NONKmqzeUwgaVWe/b"
    "1644knSdnyDcpg0S49Re3+294Qa12fHsg1PbVgGyLuo0qdBSmr+YBkHFHiTplr6oGKfBqfqjZWMCwnWyCLyJsylq"
    "jnbHRrgfmpujTWIg7d77qBaBHfVLi8Nb3CsxMwmI11Vmlr4Px4aYXdtKnxaQ9earCTRv244JXw0KXvi4jl+owWp8"
    "DdLQ3JFAfZmN82qDcz1JaOTraV2uMJFmsfI1A6Qg126L6lW0pTdjI//7MWtDzTatxbAJvTCZrhGEVQYSztJT2aLr"
    "UcgOYrmOiOH6VpDKtnYomnbiJGhHM546GqOwjoN9U91gMF6b2Alfkjx+sPtyMyUlAXJjknUQ35UJzMsGxlFmDdl5"
    "V6UFdFJAZUURQiUIKwDg1l24JtK6Or4llhSckJ37CGtjU8SwsEe09C/SnTXHP61uUMgeCfKhZVUIjZM60nwyxq4A"
    "X3NMXTekAz/j4UvrKybfyueWKiiJ8dwmmHamfFLKkNjboAjq0EJzlyfFB62F7asCE9RiUpmcAGag9Dzuf+Tn35MM"
    "ir/KT1lMJMqmyO418uL8DnrMzrMONeTEUqivkv9mcvI2lk97DANDBXLCvq/TNF/PZxjlGu8wxg9PrJ+VgM7RQp4/"
    "8/COtEmbqobGzRQTvxg6qP+Drz3+fiIUIvsWwlWyxHk3P86gKZJCyBTqGIGD+DYnsTyWMDrhIcjcHh8brfzIP/vV"
    "2FBP2g=="
)
SK = (
    "I6V4IFKJVV5l3fVnYBy0cV+1k6d5ao9x1mjDvKh22Tdg6XQfX7imizxJC5Pkqg5dgiBu87jiJC4bz0cp8uFGqg=="
)
SIG = (
    "Fxh/AyW+vDUEOBaRjZgvhcgBJWxZG7F3srk+MQFAn86a2iNyE4ao4VordDdneekbIWRWOZlL7oRTdG+LzOjaEajD"
    "IYyBpbnoOWRfJueizqcfa9J0hs9E+Yy83JPRDlyLhm512PgF+N9ng8b13ThGqd24xRaMVg4J7M2sZePHfLsURo76"
    "MQwyzMI3SuBzan1wQyfxHjxcdPGo87gXQBmkWYpbx4lbSufgf2jSfl92YItblKAyN6Dk5aU/VOwb3cp75eM+TS7J"
    "pKX8HIg0bkUj2Oqwymbr1a8JMbk7W7xMU+OcAFRcAj+e7Ju1+TgPGm7IfDKrjLD6DVs9MwZ4fnr5RnoyIVWBQ+vb"
    "NGL6EWRjGJc1a7WHBVAbHDrNv1o6Rb6cwnGMv+wBUBh2Gn4a0/jgIBZx7beVWF+1EwOReswwuYRHi6vmtIkXkmi7"
    "Pa9TcTcDyjTA1FgJxhpke0CMWY4kHcs4+2oFMcsnhpx2H0ck/8XTTg0maM77QQHhmkd5RVdAMGnbjaTSQPNOo1ot"
    "HSNL+kp8TILiOoCeoRKzypTRfJ8wM9rniqAzzaYW9YfdjKOBt5acMkCvSx0bUuF53V9nIgLgAOZFx2BV2MBJQOiC"
    "95SnJpJ8SMSFuQJk6OSLy0crn8mW42D41KSGzoxTShQMu3S0v+LY3it4ixggFQUhQd1urVpKD0Iu4u7AZpg2G/G9"
    "J9cjDp2met8F6BjEKKZbVZg1YuhnPiLIRc9XhTHAtpEajjwmOiShljrcDu5zYk+TB/3nbCCz6m/gy0BEw4LCuiot"
    "KqBrSR4EnrgjTSfBRDXEuSFy+krJ6tHxnHKkwbxqLAeXkPOP7KX8OnzotuyethttX4JUg06UfS9TVGS9jy7dTLJB"
    "y0VvZZSDnyfK1lyfg4pFcPGGHlyH4ie8vlryIpXbOjsM2CdaJDYhG0IPOSJgSQJUUWIsL6wFv7vcLpAdPlOKo8Ps"
    "Bqp6dOr2JEH3xHkADCU3aQtibuT25KZNmYLaanb8/vwCjgFcLa2lheCaKeHwPRwqKLU9bJbX9mPJZ/3/MVk0ocyZ"
    "b/Il1pEQL0oKkpcpX//xGggJas1CtvQFRJPtJNDe/ssnhGQ7yfHzA1F9Tc9jCfhHM3xFwXwypoeV1RbpPxXdwQUf"
    "LzYNVfVlHblftQTYjfBAmtQvnnAVExwPUcPhP6JCrIczDU4lWP55xJf9bpNd43/+/6ubp9tv2YTQev31xM937nVZ"
    "qBDOPozJFSZaGnuq9p+WIFiYMtjfhK2J0aTWQWpDIpIq8r1uGznkSjI/NhUmupVNzG5elBxSrTfJIhzel2XNKZt1"
    "yDklX8GaDDlrK9yRru6dSmbHNnmPO1qgfNjey63vf+edoWmrCzUVDt74rBAzkhVEvMwved/c1n0BVKK6TLlgzFI1"
    "U0DwI29wYiBqulMIeATORHAC6oFRNE4CQk/fgWxJco+rAKPFm/16S5eT+iNSUhEwQ7DRcrFuEY+Ao8negVJxq5PM"
    "XhiKI1MU02gFoYMEmQi+DriHMLAQerKlUJ2P7ecRyOCy+TETlAsyaJHwlDrlQbAEVnIHidzILHMjRHW6qjEPZ2yA"
    "Yins0l2n/shsQwZwD8sT+H8ya4JieOto0KpI1nHntvM9u4RgJaQBnIeuPWbQMYCXY/6ah0/L4+gnIrm6yM4G6l3v"
    "ovupqUnrWO9t3MIXATDoaYu+iSFd1iYNEy7PPLVlXott5zs9TMTdlMJZhnnwEr2jiuwvXoPV6Gr4/CLUXzw0N2So"
    "4nHwBbDeSWeq9DCVJ3Knrf/mMhunONK81NZj03nBSKuEtwPZKhtRVugTKNSh88FMXnymc+bxNNydhGW66fBw+dAF"
    "UOPDh9HYAIBSpLuPHBOxsHd+5eALled3gjnSHh990tTlfc4eBG0ncckOQjKn9MWejU4RLydc0nWhsKzJ/zFicix5"
    "mH/cjUoas6ejhUPP/e56sy7FTnqK6V/nZ/l9bfCdpmjkn6ii1iXpLVzDlPjUjBGwZqG4NO4+hEzqO9CmPk6mErjL"
    "v/DwxLAOIK2gDr9w7EeAt42kM8pooLK/FwGiT5s86d5QNwS3gXsIGjzkkYG3uPNaOyD/mUH2XnLo0WI+ZW6YwIUw"
    "Z90XIE/cvoJT+I+b+vRlCz5uubESAUDv2N9LSrxZkRK+kPJJGXJoLM/vJ6eZfNUH00E2/t8/wThXlh4T+WeMO5QT"
    "o4Sb01CXWzpUpXRmwxxLm72duZLVo2ewDlUula1IBMU4UOPIzghJQ1Y41lPX0nbdm4xC/pZVAYMt5WvrHWL9sA/A"
    "6EJ7REpQ8e8WNRZz804UDr9odecF2O65LSKZTT0362UqibVwsDkAa2paxn62luSAuC2jicLCdXBga5Kz2HGjccZo"
    "Uwi0sAM0wtYe/5cEulzOQAu1YrvNoJpI7AlIIYukEesyRvykbGG9iL5Rq0lctWk00J8I/u7wOnxJbQwjPnRyNg98"
    "8C2fEELR8uAXd2KU0+J3zK7tqxNQs1AN9iqGJuObEWj9H0FRc5pQ3sloY+HBvKEcy3sz/2CgMwpqt/m5NonLvQIu"
    "ibbKut2xR+moa4YoJO54qKnBVjPXHZy2glgVSLMJbcMfDfyN+pJKWl64b9x5F19D/wUCL0FuwQ01uLCrs3dg7jcf"
    "MXOzx68GVzA3vBBxoatpsCZnHVNHna+HPhmonNaZD16unsJZqQ5KF5dKeqJys4eC+wsEMP0+w0v7H2Ta0XbLK6gn"
    "56FNeBXNCBAoHVmQk0Q5nLmP5Zv7xmIyIMS7Lqvp2yb6GHK2n2Qv2+tKYbIEfq+l4FIMp8/2x7tcaCoBDZ6NAMae"
    "lrk00TpkDVUXIauNVQE1omyzt/4wE16n86YnjuChvC+sLkEntsaAEnKHANqIzPD/WeM/9LASJzcedlufqbGA2igK"
    "38twHJ1vBwHtaKCYx6CzoQvOh6SydXxRD4hMHprSlBUtv76mxtBxEeBkg8iBLNVhmEVTqj70BrsyvoKBp7DMivgW"
    "n/8vG5FiZ0lLAJwR/49MpMFKGDyfgms7xWbBmumhYHlwIDKTH+wQ0DU+RVcyJ24ETMbrPL8BDjE6/7Zj/xa3mRuW"
    "BOYkkpd569fuE/lUWohiZQ+3UAg14JlMsFvNLTAd1DZPhR/G6lqNy/fe6NYnfUHM+qbJc4aZCrvsZzi9/751ytzm"
    "xKCEqaujeIVCDjmKg6BZfs8RAWQ0AVYhb42MAAnTt2iqgrtSUxljuuaFZHnjtMubokO5EJvQzGTg2SD2hYEWG6XR"
    "VnMFWKMzDHDVQLbDvn91znvMNABXZMp0WWw4UaxwBa0u3AeIHnlg6sxoFNiz9WcaGAu2trHDgjdO1wsCmxulunxz"
    "mOkBIO3Varc7ctvTtI10yWCfgMJHTXH4aCTbutUIgBw9jF2+SZMurzvrygOWjhCaew8PopVJ320XUzOrKYgiF9Qx"
    "/FhZR0972atOq52HdODl/WXy2tk2rzP1LNHWhy0K59FwiUNubWa3q7ZTZ0saGA9c0e2QbYGAc9MgMKXB9mthuLda"
    "7V35EhM/MAHEZ+8Qk75GYPu3Ef8/nJzEYdJGKliNtaFY+iUZutWLNuMEQcIcuRmBRhFHnI/75akCSqI2v6Jxe1n4"
    "h/TzNqpsC8shZ7ewsJVNDQ8xucysUPjqVhQ6pNMhyddUSo+ajJm9ZOXHXTmgGOS4dtFajI75QAHxyzEMPCg7AMTQ"
    "1JOV2SOtgqBO1MhEKJIC2G46ZCW0MTklRdQ+VgcDe5Zd4zvy3qYHv/J5cKy8OiLZ/90BNR8/eh1zycRG9BLED5nN"
    "JzpXZZmKgbTrfIPdHtjo4Unv3nXvn57/x+FKegcblMPlUZemQmxSF0OY6v99+HXQ7I+sYY0tK9j8L1vzUkUonwUB"
    "Ca0+hQx6elg7OMJ2hLTBFP8kSdI+y7qN0TnY0SL6eQm1ayMBkK/geJpMyKAHpUMM8WHR0wJgWz2kuBFNbT6GDtF3"
    "f9vqU7+a9NmuzcUixiDIzEnFAyKeN0SFIDkejIkapjAcrFuWRN8lCs2Sjzwh6LQ5Tdv3AhdO5bgNh9aRULWYjXqk"
    "05kVLZxv6ONuWhNYWRhVG2wxBme9kF2u6PKxbF8yjmfkTdn/pVyyQKgRzlCmVPX0Qu0bFAjXmhgc1lzQYBkCMWrv"
    "IlN54+a2FxN71sMELqf6z9cJVPKSQt5JzgTIOHygYlCtQqZ1wynsC/BswnYkT15lJZsPaz6MQxiJwmOR4XuXhDrI"
    "1pD6BWkk1FAfzBnIS0sPVgE0yqqhxoL2WlVQqf01aa43kNoZHwHE0fSJnynk4gRcBsinWHmw/Agi02lytNddP6PU"
    "KsNROGeRZaq++AXJLrwaO22NrdkEBy0xMjU9T565FCxKdhYbWOABAhMfcrm+y8/R2f0OOWV5jrTR2e4AAAAAAAAA"
    "AAAABhAUGCQtS+Qwp2u3GEqTvmduwfKip6qsRtx1CHyQ9MrV7V3OiI3kb7N99IqGEHLedwNnzpChbu/EjLW1gNeh"
    "m0bSGvlKBQ=="
)
SIG_WITH_CTX = (
    "r3ma4PVEUN3jyVhD0ZKc5dSZ0fBvPveY7Tj5MeNZi/qtUpQKdyTH18cuBSdo9ghRwZVkP8EslO7hy5jz2IIxZIpQ"
    "9SLS0LIcbyR+iDoIP3CRoh8uMR1xfKICit+fxDhqeXDLL8VzAQFTcPDzHaQDVH5ShXiw+Zykvg6iaxYwrtp9mlCc"
    "quhu34Xy8M7PL5Zo0nsIDmZFz7giD7uLH1lDTL9WKMs38UH0kyuTy1BAfilj9L5fdc1XJ2PIWG0647ZKhtyusYjJ"
    "ibSR0nOlhyPbJqZ/0AXmi5upRsJGP7AJItKBbGWEsAxL6h0XMhKCwh9waS70zXfsNBdgB9Way4hTNNkOugVylEhS"
    "tFtW/4zl14B947SwLgZyHQz8GFIzgyoxhbRo33gF80Btc43DodD+Tvj1Wm4h0CmYPNlTSaRxcHxpzSNv4q4FTxtS"
    "Ae+Ye9s2JFM/FcqfAb6z8G/3FyNPpn3BvMmoEANy9MEKit5V7WVfIUbhUKzBJDaATIWTsCiOpvJ/ewGAhpwPr002"
    "T/At7W5DccCZ+jKs0elG7a6ztpunzV7swPmp4JrWAPEjerdyFdGxE8MGkSFMGtWox1HCAO8OYnra2RXorUxK/syO"
    "BMDqRVb/vUcSgUwIZfWhCtol1Wy6Z1uMA2QngdHAgCya+xFnMbONEr8bDa5N5slDS/0aR50i2hyt5t3EiK0hexNe"
    "JtLYUds6ffvc00B79dJSvdXXZ3mkjNDntLEy1SL0WXlIoFSuqc0wH2zxR6cOzOdhLo8vX29tW0bCMaa+0F5IaM0y"
    "HnZJiq1VE35NoxGUOfFujnWTAe0BTtI6VhzPfNyFgUO//HnvTRh9na4ZdVgqLVfYvBBeYIBwz2UWqitj6+qiR88F"
    "dw7fHmN/TUcnxcO+8hBQdJ1DVLcim2fFCGM0YmDoGC8b/NgiReRQZkrBVvqemXzes3xWGaNsZdFfajGH/SIvKuBw"
    "wRtOT1HGjzb/tGm27/yGGC+0CX4qF9oi6zuI+ptdo03TXVZoGZpiwG9diFKyFpZaYqzfoZOtGB7eNLSGPkoxJZqS"
    "rkAUd/lUamT5nQSiIqc8+ewLImgEOVHus6ASuoKyJo/nvQV9cO3SvXyk02PpdWl5AuwlkNDHAa92an9aY3WHGxds"
    "4xDx71nViy0P7Ao3qgyPBstjfA/nGT+Ebm61Nar8qZRy8N8245PKSZZdRlZzyVHdggvLPixNRK++15JfvPDuAvQd"
    "J0cNPRBjcH3+1caZKd8Mp2MMZsy/1DIeBHtD/ySGsJYZBjJ6F0TOffRHLi0ffXeI7gfuFPlvKNlk697ecCKKUnQU"
    "Xcp8VLM6LpplA/Pz3LBRMGU2bSDa2qy8oHmo8h/gQODZscCosOXOWUJ546PIcQArThTZfm172RRhMdZaBcY/Ndx1"
    "CVxvozPGP0+WFYr0jfo1CPPbxMFQqdWFt0XchKiyfuNJNcH24BMUQEmLC3EF6LtKBqrHWp2GpA7w61FgMliVTCYe"
    "sBN35pFTMuaWuC+b6vj4qKPT76GGAQvFnEbyh8uHMMqrNqzox/V//FfBl+6iVWp6pYkLNDUdkQVEWrTpp1nJI1hF"
    "KBRC/vp8jSQSRyjZV2oh8ho9kULKUe4JEdsCplQ97j+G7O6O2fwHB+Uho1bYWNRxH+eIajqDZ8HNthyFBaHkCxpV"
    "Qz4H45N+0e+fiupP1JHl71uoT3LdECvP5aKwUhGObEl5uuqwv7r7YChmxfiNy0o0djnfUApVnKzpfmqxU+AQs2x/"
    "474V1YyGrr8XHDA6DbOcxx5FeHmZWlB+jGC1Na4jMu2BjZknV+yLkJXYFD4rxdWbyNHRpvWsUCkY6J8BTqFtEiYb"
    "2K11ECaOquINetJjrIW307PNt928cpkggmBlTzBkkvyHDnQyiINnvpmdf4TFoBRMYi3bEFyMhD7PC0EK7DbhVWFB"
    "FAa25db2EkH6KoFwq4nPa9kS7zyjTdaICdMPhWCtNWB8GcOwAv5ruJcq9MbpQen+Ti0XLebGNepp4T1Atvx5+pH2"
    "dkbIcD5a1jzS0XAv2zMmJ9CBC5/jR3WyEjUwVsYShsCxnj2d5EoB3EaieqzmlObjRUpSbjuOCCT2hXlQheWTEDJJ"
    "Mr6ada2nBN8RgnDx8fOH4izvTu7hDS7q4yrIshsdsW7NABOwZ+Yp1ra5XWpp05RaGpifgtcMZ8hqga+CvawpA0Lv"
    "202CBc00FNT1ZRZL3rR6X/dYKgpEPhG1PnZuuZT+5UdVTT7fwKqjuJ43JyROFDhQmKV6Kdl2lJYCuCslgSDtBawj"
    "VKaNGPpjSUVxXaTyj80IyzobIUM9YeNO0w+6C68K4dTiv9+6/0/RCtYwQCl+QS2GWW6EIVI/WBmK0x3VbL3zGSeS"
    "d35tBedvyFqlgVFat2mqwWV3JF1fkpM8c9CRQSMO3RSrouxS8BwzZmN2cbxchRGYt836FpFlO6g4HuabzmQJr58/"
    "Xw2v00QHl7hRxWoEdgWEYHODxkCQslhtjmP3ta2lIc8NsxYpF/e6tDW2ESDKkRkZkQBb7KO39/mRKUg2R52tlVDQ"
    "admJcz6kFHVzvfdufg7Ii2Gv365rw+TPv5W8I1McAREVEC9xXIGQDRumgRORJGF9dNNACBodyYtvr31qGHJLtDVP"
    "bwjl6pLnImrsfut5RYaykL7LgiUcq6wqZ49lHWvI5Fp06+mSVyj6juN1dqLtbQlpXaxOH1X/x5Yz+ZSKGKjDfiv1"
    "fJaDUr41S5layN96m2F5PS0mZvZqlIzwFj+ECU2GiZcpLudjlgEMeJX22NLxWaf6ha5TO8TdLI5nii6qOAFSkE+E"
    "whutRX4zvNxdVE5pjuerN4+ZSL1JCjzoesCXYqgpzJ1oBoMXuEZRNQWDmVgGtaMoKW3LzHE1oQ4sMt0qzTbbGAUt"
    "YEEVRFo4EocyObFxaWJY/91IHr0WEz18TpZBLcxaXoJp9d5qNdLg8+jbrWGWj9r/I8/dUPGn0ix8KrMJ6gRKEjMw"
    "5ot/hE1fDeq2E4wSdzCV36IHaxAMCEl7o4jofEuhusZUAywmiCHHlCVMQvXfK+t1BNdXb9Ylkp0igoy+pNQK0mRW"
    "hwqjNy8HLLnua8AAOyJM0KIc6UZFUeRVbh7y7Oz/rQBAaZAvn9ORpzII43+2iyT1X8tIkSL+WuF9J4r0bwFkXhBV"
    "3/envgxPvxBif5i7SJspaIVJ2TK4mbJhg1Tqa7waGlZ3SDE/X7QIej4b6sr0Oq81QUftNi+zAyfTIlF8V/3Tw4+B"
    "E1uSkrnnXEln8n19p1nnjwpJKg+/24h4rxBtNIK/2NCP9I5H3/ptnwx+npB2PYX8iyGFqzrfYm+uafE9pfBDvH9K"
    "wKDe2Om69oMXsRl+67WAuOD2Pf62oPsievsy36IZOdKLC0yWnMOiWBTqPsJRIK0Z4PpgYHX7AnkiXXNxQ4D2UZki"
    "EhawZ9AZxz91CPG/uBLJRRne76+lMqcnzsUVgumEkqlyE+ejXJlwWc2XfMqmgJqYJJBTCGLri6/UxPUjKcO7MsRp"
    "RREUsQLV/hmzC458mvrcOMYtCNnm/TPYEYa6t47A4AX55tuOWULFvNkQXuM8K2OgMi3ufacp3smGlELS5WJzY49X"
    "nUJ25Abs2Cl5Nk2Pjgg2X11DgD9a21HpM388oQ1SmoxVtVOvMPC1ygegtat8NQu2N/4RiWzkPrpYo7hNlr41Qp3H"
    "Gg/tkc7BDa9oQgVUGK7RnAy1y6h7qIOEdpJWiOqukLuBn9jYpXi9d0PvcGmc/K+09O2iZDFLCX9IMRnerdndTHgA"
    "9fUVBV8vIYis12zdUaFdivI6LvlvGYcCSn4dyfLc4pFZmCayoUvMYAOOt7GkvqBiy0WzrqqxEoCsL/fq0nQ4uhlR"
    "qtDPOZXOrFxMJweXDpD9ezH/iQPpA1sX/ptLonl+CAP7pvCnwTBrLtb1x52FLwhvvEi3Y3dToR0yvMjw4/bL2Ibh"
    "2CJnIY0zERQ01Fu9MifTqRnDJJNuT7ln681HPy1dLeiLA7NAf+QRG8mf5ym30taw87KTylCQ2ZSXalP8aJRXd367"
    "tOVUdCRa3X9rh55aeLxk7mQY55LIsKMmSNt8OtTUpyN+0sqUKluLrxJmalR3zWyBsYrET32SqY7H4bG8+RaU1yIT"
    "wXUQuzLdI5zdBj/hCoXkUG3IXcUmE+o06RDxJ7mpX+A1QfD86pSA1faTHgBzRQn2sFKGtJsXALcydjvefdvwekT5"
    "Atwvb09HoX8dcAptdwju8qWzEq1fWIKxNAZT1YrQXuB6VG/NrJUBAUNuwN4vP5Tyt0RBXX0Bogn/wNRLVLQu1jxi"
    "Wgg6miaVUGfYeCzbnf9AV32K1B8xNG55iqCoyt3fGh8jKFqCjcfU5v5JVFiu/g8aLz9mgJKkvxBKdo6wuwAAAAAA"
    "AAAABRAbICkv9ros+5zHDt4jIfhsBxFw9NeEQPRF2qF21Tu49bgnBsLSQg1HKUcN9GUFZApaQDL09qlDv33xnH83"
    "QYFqsx1iAw=="
)
# fmt: on


def test_draft_vector_verifies_and_the_ed25519_half_is_byte_exact() -> None:
    pk = CompositeVerifyKey.from_draft(base64.b64decode(PK))
    msg = base64.b64decode(MESSAGE)
    pk.verify(split_draft_signature(base64.b64decode(SIG)), msg, b"")
    pk.verify(split_draft_signature(base64.b64decode(SIG_WITH_CTX)), msg, base64.b64decode(CTX))
    with pytest.raises(VerificationError):  # the ctx is bound
        pk.verify(split_draft_signature(base64.b64decode(SIG_WITH_CTX)), msg, b"")
    sk = CompositeSigningKey(base64.b64decode(SK))
    assert sk.public == pk
    ours = sk.sign(msg, b"")
    assert ours[-64:] == base64.b64decode(SIG)[-64:]  # Ed25519 is deterministic
    pk.verify(ours, msg, b"")
