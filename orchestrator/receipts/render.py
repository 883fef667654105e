"""The receipt as a printable page, laid out like the provincial non-tax receipt; on a
phone it narrows to the screen (the payer opens it from the payer's page)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from orchestrator.channels.registry import CHANNELS as REGISTERED
from orchestrator.domain.money import to_yuan
from orchestrator.domain.states import Channel

STATUS = {"ISSUED": "", "PARTIALLY_REFUNDED": "部分退费", "REFUNDED": "已退费"}
CHANNELS = {Channel.CASH.value: "现金"} | {c.value: s.display_name for c, s in REGISTERED.items()}

_PAGE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>非税收入统一票据（电子） {code}-{number}</title>
<style>
 body {{ font-family: "SimSun", "Songti SC", "Noto Serif CJK SC", "Noto Sans CJK SC", serif;
        margin: 2em auto; max-width: 46em; padding: 0 .8em; }}
 h1 {{ text-align: center; color: #b22; letter-spacing: .3em; font-size: 1.5em; }}
 table {{ border-collapse: collapse; width: 100%; margin: 1em 0; }}
 td, th {{ border: 1px solid #b22; padding: .35em .6em; overflow-wrap: anywhere; }}
 th {{ font-weight: normal; color: #b22; }}
 .meta td {{ border: none; padding: .1em 0; }}
 .num {{ text-align: right; font-variant-numeric: tabular-nums; }}
 .stamp {{ color: #b22; border: 3px solid #b22; display: inline-block; padding: .3em .8em;
          transform: rotate(-12deg); font-size: 1.4em; margin-left: 2em; }}
 @media (max-width: 600px) {{
  body {{ margin: 1em auto; font-size: 14px; }}
  h1 {{ letter-spacing: .05em; font-size: 1.2em; }}
  td, th {{ padding: .25em .3em; }}
  .meta td {{ display: block; }}
  .stamp {{ margin-left: 0; }}
 }}
 @media print {{ body {{ margin: 0; }} }}
</style></head><body><main>
<h1>非税收入统一票据（电子）</h1>
<table class="meta">
<tr><td>票据代码：{code}</td><td>票据号码：{number}</td><td>校验码：{check}</td></tr>
<tr><td>交款人：{payer}</td><td colspan="2">开票日期：{issued}</td></tr>
</table>
<table>
<tr><th scope="col" class="code">项目编码</th><th scope="col">项目名称</th><th scope="col">单位</th>
<th scope="col">数量</th><th scope="col">标准（元）</th><th scope="col">金额（元）</th></tr>
{rows}
<tr><th colspan="2">金额合计（大写）</th><td colspan="2">{words}</td>
<th>（小写）</th><td class="num">{total}</td></tr>
<tr><th colspan="2">备注</th><td colspan="4">业务编号 {business}；订单号 {order}；
交款方式 {channel}{refund}</td></tr>
</table>
<p>执收单位（盖章）：{unit}　　开票人：{issuer}{stamp}</p>
</main></body></html>
"""


def render_html(receipt: Mapping[str, Any]) -> str:
    issued = datetime.fromtimestamp(receipt["issued_at"] / 1000, ZoneInfo("Asia/Shanghai"))
    rows = "\n".join(
        '<tr><td class="code">{}</td><td>{}</td><td>{}</td><td class="num">{}</td>'
        '<td class="num">{}</td><td class="num">{}</td></tr>'.format(
            escape(item["fee_code"]), escape(item["name"]), escape(item["unit"]),
            item["quantity"], to_yuan(item["standard_fen"]), to_yuan(item["amount_fen"]),
        )
        for item in receipt["items"]
    )  # fmt: skip
    status = STATUS.get(receipt["status"], "")
    refund = f"；已退 {to_yuan(receipt['refunded_fen'])} 元" if receipt["refunded_fen"] else ""
    return _PAGE.format(
        code=escape(receipt["receipt_code"]),
        number=escape(receipt["receipt_no"]),
        check=escape(receipt["check_code"]),
        payer=escape(receipt["payer_name"]),
        issued=issued.strftime("%Y年%m月%d日 %H:%M:%S"),
        rows=rows,
        words=escape(receipt["total_in_words"]),
        total=to_yuan(receipt["total_fen"]),
        business=escape(receipt["business_no"]),
        order=escape(receipt["order_id"]),
        channel=CHANNELS.get(receipt["channel"], escape(receipt["channel"])),
        refund=refund,
        unit=escape(receipt["issuing_unit"]),
        issuer=escape(receipt["issuer"]),
        stamp=f'<span class="stamp">{status}</span>' if status else "",
    )
